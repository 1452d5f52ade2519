# raypod: `make demo` runs a job end to end; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The operator's metrics count a pod as a Ray pod when its image reference contains `ray` (and neither
# `lsf` nor `slurm`): docs/kubernetes.md, the operator's rules. The samples run this name.
IMAGE_TAG_BASE ?= ray-pod
VERSION ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' raypod/__init__.py)
IMG ?= $(IMAGE_TAG_BASE):$(VERSION)
WHEELHOUSE ?= wheelhouse
# The Python and platform of the image (Dockerfile's PYTHON_IMAGE), for `make wheelhouse`.
IMAGE_PYTHON ?= 3.12
# pip does not widen an explicit --platform to older manylinux tags, so they are listed.
IMAGE_ARCH ?= $(shell uname -m)
# `make soak`: how many runs, the first run's seed (default: a random one, printed), runs at a time.
SOAK_RUNS ?= 200
SOAK_SEED ?=
SOAK_PARALLEL ?= 4
IMAGE_PLATFORMS ?= $(foreach tag,manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1,$(tag)_$(IMAGE_ARCH))

.PHONY: help venv demo test test-unit test-loopback test-ray test-image model check lint typecheck links bench soak \
	wheel wheelhouse docker-build docker-push image image-test clean

# `make help` prints the `## ` lines of this file, in order: each target documents itself where it is
# defined (tests/unit/test_makefile.py checks that every target has one).
help: ## this list
	@sed -n 's/^\([a-z][a-z-]*\):.*## \(.*\)/make \1|\2/p; s/^## \(make [^ ]*\)  *\(.*\)/\1|\2/p' $(MAKEFILE_LIST) \
		| awk -F'|' '{ printf "%-18s %s\n", $$1, $$2 }'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per extra set, so a change of setup.cfg reinstalls.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

venv: $(VENV)/.installed-test+yaml+dev ## create .venv with the test, yaml and dev extras (the test targets do it too)

demo: $(VENV)/.installed-demo+yaml ## run a job end to end on a local Ray and a local S3 (both started for you)
	$(BIN)/python -m devtools.demo

# The unit and loopback lanes share no server and mostly wait on loopback timeouts, so they run in
# TEST_WORKERS processes (pytest-xdist); the ray and image lanes share one Ray head and the machine's
# CPUs, so they run one test at a time, after them and with no other lane beside them.
TEST_WORKERS ?= 4
test: $(VENV)/.installed-test+yaml+dev ## install the test dependencies and run the whole suite (all four lanes of tests/)
	$(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) tests/unit tests/loopback
	$(BIN)/python -m pytest -q -ra --durations=15 tests/ray tests/image

# One lane of tests/ each (tests/conftest.py marks every test with its lane, from its folder).
## make test-unit      the unit lane only: in-process tests on fakes (tests/unit, well under a minute)
## make test-loopback  the loopback lane: scripted servers, the fake Kubernetes API, raypod as a child (tests/loopback)
## make test-ray       the ray lane: tests on the real Ray head and the S3 server (tests/ray)
## make test-image     the image lane: the container image and the Dockerfile's replay (tests/image)
test-unit test-loopback: test-%: $(VENV)/.installed-test+yaml+dev
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) tests/$*
test-ray test-image: test-%: $(VENV)/.installed-test+yaml+dev
	$(BIN)/python -m pytest -q -ra tests/$*

# The pod model (tests/unit/test_pod_model.py) runs a few hundred examples in the unit lane; this runs
# it with many more and shrinks what it finds (its hypothesis profile pod-model-nightly).
MODEL_EXAMPLES ?= 3000
model: $(VENV)/.installed-test+yaml+dev ## the stateful model of the whole pod with many examples (MODEL_EXAMPLES, 3000; nightly)
	RAYPOD_MODEL_PROFILE=nightly RAYPOD_MODEL_EXAMPLES=$(MODEL_EXAMPLES) \
		$(BIN)/python -m pytest -q -ra -p no:logging --hypothesis-show-statistics tests/unit/test_pod_model.py

check: lint typecheck links ## lint, typecheck and links: what a change must pass

lint: $(VENV)/.installed-test+yaml+dev ## ruff: lint rules and formatting
	$(BIN)/ruff check raypod tests samples $(wildcard bench) devtools
	$(BIN)/ruff format --check raypod devtools

typecheck: $(VENV)/.installed-test+yaml+dev ## mypy --strict (setup.cfg) on raypod, devtools and bench
	$(BIN)/mypy raypod devtools $(wildcard bench)

links: | $(BIN)/python ## every relative link and anchor in the Markdown resolves inside the clone
	$(BIN)/python -m devtools.check_links

bench: $(VENV)/.installed-test+yaml+dev ## compare raypod with the Ray SDK (bench/; BENCH_ARGS)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Not part of `make test` (tests/ray/test_soak_on_ray.py is its short version). A failing run is
# replayed with `make soak SOAK_SEED=<its seed> SOAK_RUNS=1`.
soak: $(VENV)/.installed-test+yaml+dev ## chaos soak on a local Ray head: SOAK_RUNS pod runs (200) under random faults, from SOAK_SEED
	$(BIN)/python -m devtools.soak --runs $(SOAK_RUNS) --parallel $(SOAK_PARALLEL) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

# The sdist and the wheel, built by PyPA's `build` in an isolated environment, as a release would be.
wheel: $(VENV)/.installed-dev ## build the wheel and the sdist into dist/ (README.md, Install)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# raypod itself (pure Python) is built here; its dependencies and setuptools (for the image's
# offline build of raypod) are fetched as wheels for the image's Python and platform.
wheelhouse: | $(BIN)/python ## collect the runtime wheels for an offline image build (WHEELHOUSE, IMAGE_PYTHON)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) .
	$(BIN)/python -m pip download --quiet --dest $(WHEELHOUSE) --only-binary=:all: \
		--python-version $(IMAGE_PYTHON) $(addprefix --platform ,$(IMAGE_PLATFORMS)) \
		$(WHEELHOUSE)/raypod-*.whl "setuptools>=70.1"

docker-build: ## build IMG (IMAGE_TAG_BASE:VERSION) with docker
	DOCKER_BUILDKIT=1 docker build -t $(IMG) --build-arg IMAGE_VERSION=$(VERSION) \
		--build-arg IMAGE_REVISION=$(shell git rev-parse HEAD 2>/dev/null) \
		--build-arg IMAGE_SOURCE=$(shell git remote get-url origin 2>/dev/null) .

docker-push: ## push IMG
	docker push $(IMG)

# docker when its daemon answers, else buildah on a local base; stdout is the image's name only.
image: | $(BIN)/python ## build IMG with docker, else buildah (no daemon), and print its name
	@$(BIN)/python -m devtools.image --tag $(IMG)

image-test: $(VENV)/.installed-test+yaml+dev ## build the image with buildah and run the pod from it with podman (docs/image.md)
	$(BIN)/python -m pytest -q -ra tests/image/test_container.py

clean: ## remove .venv, build/, dist/, *.egg-info, the pytest, mypy and ruff caches and the wheelhouse
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache $(WHEELHOUSE)
