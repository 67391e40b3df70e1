# Developer and CI entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup venv build cluster-up cluster-down test demo lint

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

# Python deps, Debian packages (prometheus, openssl) and the pinned Go components.
setup: venv
	e2e/setup.sh

build:
	e2e/build.sh

cluster-up:
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

test: setup
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check e2e tests

demo: setup
	$(PY) -m e2e.demo $(ARGS)
