# nighttune — the README's commands. Everything runs from a local .venv that the
# targets create and keep in step with pyproject.toml; nothing is installed by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=
# Test files run side by side on every core (pytest-xdist; at most 4 workers, each
# file on one worker so module fixtures start once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

export TF_CPP_MIN_LOG_LEVEL ?= 3
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: help setup fashion-mnist browser run test test-fast lint docs readme-sample bench server pools deploy worker-cpu worker-gpu clean

help:
	@echo "make run    set up .venv and run 'nighttune tune' on the offline default (digits)"
	@echo "make test   set up .venv with the dev extra and run the whole test suite"
	@echo "make test-fast   the suite without tests marked slow"
	@echo "make lint   ruff, mypy and the import layers (lint-imports)"
	@echo "make docs   regenerate docs/reliability.md (the reliability tables) and docs/command-line.md (--help)"
	@echo "make readme-sample   rewrite the README's sample of 'make run' from a real run"
	@echo "make bench  run the benchmarks in bench/ and print their ratios"
	@echo "make server start the Prefect server for nightly runs (SERVER_HOST=127.0.0.1 SERVER_PORT=4200;"
	@echo "           off loopback: PREFECT_SERVER_API_AUTH_STRING in the environment, or SERVER_ARGS=--trusted-network)"
	@echo "make pools  create the cpu/gpu work pools and the gpu concurrency limit (PREFECT_API_URL)"
	@echo "make deploy deploy tune/nightly, tune/manual, train-trial/gpu and predict/batch (PREFECT_API_URL)"
	@echo "make worker-cpu / worker-gpu   start a worker for that pool"
	@echo "make clean  remove .venv and build leftovers (not the dataset cache)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "nighttune needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q 'setuptools>=68'  # strict editable mode

# Stamps: reinstall when pyproject.toml changes.
# The editable install is setuptools' strict mode: a tree of links to each module under
# a real `nighttune/` folder (build/__editable__.*), as the wheel lays it out. The default
# (lenient) mode gives the `nighttune` namespace no folder, and TFDS, which looks up a
# dataset builder's files under its top-level package, then fails on the bundled digits.
# A module added or removed needs its link: .linked relinks (2 s) when sources change.
PIP     := $(BIN)/pip install --disable-pip-version-check
STRICT  := --config-settings editable_mode=strict
SOURCES := $(shell find flows tasks -name '*.py' 2>/dev/null)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu]' $(STRICT)
	@touch $@ $(VENV)/.linked

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu,dev]' $(STRICT)
	@touch $@ $(VENV)/.installed-run $(VENV)/.linked

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu,dev,bench]' $(STRICT)
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed-run $(VENV)/.linked

$(VENV)/.linked: $(SOURCES) | $(VENV)/.installed-run
	$(PIP) -q --no-deps --no-build-isolation -e . $(STRICT)
	@touch $@

# Real data for the tests and benches: Debian's Fashion-MNIST (the four IDX archives,
# MIT, ~30 MB), installed where we can (root and apt). Where we cannot, the tests that
# need it fail saying how to install it; nothing is downloaded at run time.
FASHION_MNIST := /usr/share/datasets/fashion-mnist

fashion-mnist:
	@if [ ! -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  echo "installing dataset-fashion-mnist (Debian) into $(FASHION_MNIST)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
	  || echo "could not install dataset-fashion-mnist; the tests that need it will say so"; \
	fi

# A headless browser for the report's layout test (tests/integration/test_reports.py):
# Debian's chromium-headless-shell, installed where we can (root and apt). Where we
# cannot, that test fails saying how to install it.
browser:
	@if ! command -v chromium-headless-shell >/dev/null && ! command -v chromium >/dev/null \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium-headless-shell (Debian) for the report's layout test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium-headless-shell >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium-headless-shell >/dev/null 2>&1; } \
	  || echo "could not install chromium-headless-shell; the report's layout test will say so"; \
	fi

setup: $(VENV)/.installed-dev

run: $(VENV)/.installed-run $(VENV)/.linked
	$(BIN)/nighttune tune $(ARGS)

test: $(VENV)/.installed-dev $(VENV)/.linked fashion-mnist browser
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev $(VENV)/.linked fashion-mnist
	$(PYTEST) -m 'not slow' $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev $(VENV)/.linked
	$(BIN)/ruff check flows tasks tests bench
	$(BIN)/ruff format --check flows tasks tests bench
	@# mypy reads no editable-install finder: it checks the `nighttune` namespace
	@# through a view of two links (build/typecheck/nighttune/{flows,tasks}).
	@mkdir -p build/typecheck/nighttune
	@ln -sfn ../../../flows build/typecheck/nighttune/flows
	@ln -sfn ../../../tasks build/typecheck/nighttune/tasks
	MYPYPATH=build/typecheck $(BIN)/mypy -p nighttune.flows -p nighttune.tasks
	$(BIN)/lint-imports

docs: $(BIN)/python
	$(BIN)/python -m tests.support.reliability
	$(BIN)/python -m tests.support.cli_doc

# The README's sample of `make run`'s screen, from a real run (about 30 s); a slow test
# (tests/e2e/test_readme.py) fails when it and a run disagree.
readme-sample: $(VENV)/.installed-run $(VENV)/.linked
	$(BIN)/python -m tests.support.readme_sample

bench: $(VENV)/.installed-bench $(VENV)/.linked fashion-mnist
	$(BIN)/python bench/run_all.py $(ARGS)

# Deployment settings, read by deployments/prefect.yaml when deploying.
export NIGHTTUNE_CODE_DIR ?= $(CURDIR)
export NIGHTTUNE_EXPORT_TO ?= $(CURDIR)/exports
export NIGHTTUNE_TIMEZONE ?= UTC
GPU_SLOTS ?= 1
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 4200
# More `nighttune server` options: --trusted-network, --ui-api-url URL. The auth string
# is read from the environment only (PREFECT_SERVER_API_AUTH_STRING): `ps` shows arguments.
SERVER_ARGS ?=

# The server and the workers run as services (deployments/service.py): one SIGTERM
# (systemctl stop, docker stop, kill) or Ctrl-C stops each, and what it started, within
# seconds; a worker's flow runs end Crashed and resume with `prefect flow-run retry`.
SERVICE := $(BIN)/python deployments/service.py --

server: $(VENV)/.installed-run $(VENV)/.linked
	$(SERVICE) $(BIN)/nighttune server --host $(SERVER_HOST) --port $(SERVER_PORT) $(SERVER_ARGS)

pools: $(VENV)/.installed-run $(VENV)/.linked
	$(BIN)/python deployments/pools.py --gpu-slots $(GPU_SLOTS)

deploy: $(VENV)/.installed-run $(VENV)/.linked
	@$(BIN)/python deployments/pools.py --check
	$(BIN)/prefect --no-prompt deploy --prefect-file deployments/prefect.yaml --all

# Workers check the server first: a missing or wrong PREFECT_API_AUTH_STRING is one line.
worker-cpu: $(VENV)/.installed-run $(VENV)/.linked
	@$(BIN)/python deployments/pools.py --check
	$(SERVICE) $(BIN)/prefect worker start --pool cpu

worker-gpu: $(VENV)/.installed-run $(VENV)/.linked
	@$(BIN)/python deployments/pools.py --check
	$(SERVICE) $(BIN)/prefect worker start --pool gpu

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
