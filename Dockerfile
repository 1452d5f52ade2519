# syntax=docker/dockerfile:1
# The raypod image: python -m raypod on a slim Python, with raypod and its three runtime
# dependencies (requests, minio, tenacity) and nothing else: no compilers, no pip, no cache.
#
#   make docker-build IMAGE_TAG_BASE=quay.io/me/ray-pod VERSION=0.1.0
#
# Air-gapped: run `make wheelhouse` where PyPI is reachable; the wheels in wheelhouse/ are
# then used with --no-index and the build needs no network at all.
# tests/test_image.py runs the pip commands below (parsed from this file) without Docker.

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY . .
RUN set -eu; \
    if ls wheelhouse/*.whl >/dev/null 2>&1; then offline="--no-index"; else offline=""; fi; \
    python -m pip install --no-cache-dir --disable-pip-version-check $offline --find-links wheelhouse "setuptools>=70.1"; \
    python -m pip wheel --no-cache-dir --disable-pip-version-check $offline --find-links wheelhouse --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The wheels are bind-mounted, not copied, so no layer keeps them; pip goes once raypod is in.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels raypod \
    && python -m pip uninstall --yes --disable-pip-version-check pip
# A fixed non-root UID (the distroless "nonroot" one), so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "raypod"]
