# The raypod image: python -m raypod on a slim Python, with raypod and its three runtime
# dependencies (requests, minio, tenacity) and nothing else: no compilers, no pip, no cache.
#
#   make docker-build IMAGE_TAG_BASE=quay.io/me/ray-pod VERSION=0.1.0
#   make image     docker, or buildah without a daemon, with the OCI labels (docs/image.md)
#
# Air-gapped: run `make wheelhouse` where PyPI is reachable; the wheels in wheelhouse/ are
# then used with --no-index and the build needs no network at all. No `# syntax=` line on purpose:
# it makes BuildKit pull its frontend image from a registry; the built-in frontend of docker 20.10+
# (and buildah) knows `RUN --mount`, the one newer feature used here.
# tests/image/test_container.py builds this file with buildah and runs the pod from it with podman.

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY . .
RUN set -eu; \
    if ls wheelhouse/*.whl >/dev/null 2>&1; then offline="--no-index"; else offline=""; fi; \
    python -m pip install --no-cache-dir --disable-pip-version-check $offline --find-links wheelhouse "setuptools>=70.1"; \
    python -m pip wheel --no-cache-dir --disable-pip-version-check $offline --find-links wheelhouse --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# PYTHONSAFEPATH: no working directory or script folder on sys.path, so no file that another
# container writes (to a shared /tmp, say) can stand in for raypod's dependencies.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1
# The wheels are bind-mounted, not copied, so no layer keeps them; pip goes once raypod is in.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels raypod \
    && python -m pip uninstall --yes --disable-pip-version-check pip
# OCI labels, from build arguments (`make image` passes them); after the install, so that a new
# commit does not invalidate the layer cache.
ARG IMAGE_SOURCE=
ARG IMAGE_VERSION=
ARG IMAGE_REVISION=
ARG IMAGE_LICENSES=Apache-2.0
LABEL org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.revision="${IMAGE_REVISION}" \
      org.opencontainers.image.licenses="${IMAGE_LICENSES}"
# The first ray-pod's entry, for pipelines that still run `python -u ./ray-pod.py` from the
# working directory (a Kubeflow component); root-owned and read-only to the pod's user.
COPY raypod/ray_pod.py /app/ray-pod.py
# A fixed non-root UID (the distroless "nonroot" one), so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["python", "-m", "raypod"]
