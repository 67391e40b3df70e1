# Developer and CI entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup venv tools build cluster-up cluster-down test demo lint lock

venv: $(VENV)/.installed

# Exactly the pinned, hash-checked packages of requirements-dev.lock, then the project (editable).
# Reinstalls whenever a lock, the project's metadata or the install command changes.
$(VENV)/.installed: requirements-dev.lock requirements.lock requirements-mlflow.lock pyproject.toml hack/install-venv.sh hack/install-mlflow.sh hack/lockfile.py
	PYTHON=$(PYTHON) hack/install-venv.sh $(VENV)
	touch $@

# Debian packages (prometheus, openssl) and the pinned Go components.
tools:
	e2e/setup.sh

setup: venv tools

build:
	e2e/build.sh

cluster-up:
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

# setup, then the whole suite in one pytest run, then a table of where the time went.
test:
	$(PYTHON) hack/run_tests.py $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check e2e tests

demo: setup
	$(PY) -m e2e.demo $(ARGS)

# Deliberate: re-resolve the lock files (see hack/lock-requirements.sh), then review and commit them.
lock:
	hack/lock-requirements.sh $(ARGS)
