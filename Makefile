# prefect-stacks: `make up` runs it on this machine, `make test` tests it.
#
#   make up      virtualenv + package, then `prefect-stacks up` (Prefect server, worker,
#                blocks, deployments on http://127.0.0.1:4200; Ctrl-C stops it all)
#   make down    stop what `prefect-stacks up --detach` left running
#   make test    virtualenv + test extras + system packages the tests need + the test
#                bed (`make testbed`), then ruff (lint + format check) and pytest
#                (unit, integration, e2e)
#   make testbed build the Kubernetes control plane, helm and Terraform providers from
#                Go modules, once per machine (docs/testing.md)
#   make lint    ruff only
#
# Each step is skipped when already done, so a second run starts at once.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Options for `prefect-stacks up`, e.g. `make up UP_ARGS="--port 4300 --detach"`.
UP_ARGS ?=
# Options for pytest, e.g. `make test PYTEST_ARGS="tests/unit -x"`.
PYTEST_ARGS ?=
# Two pytest-xdist workers: the e2e layer (one Prefect server and worker, the soak) on
# one, the unit and integration layers beside it on the other (tests/conftest.py makes
# the e2e layer one unit of work). `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

# Debian packages the tests need; checked with dpkg, installed only if missing.
# docker.io: dockerd, started by the tests themselves (image builds); docker-registry:
# Distribution, the registry images are pushed to; apache2-utils: htpasswd for its login.
APT_PACKAGES ?= git docker.io docker-registry apache2-utils prometheus-alertmanager nginx-light varnish

# The test bed: a Kubernetes control plane, etcd, kwok, helm, Terraform providers (and
# terraform itself when the machine has none >= 1.4), built from Go modules once per
# machine into ~/.cache/prefect-stacks/testbed (or $PREFECT_STACKS_TESTBED), reused by
# any clone. Versions: tests/testbed/versions.toml; what and why: docs/testing.md.
TESTBED_BUILD := $(PYTHON) tests/testbed/build.py

.PHONY: up down test lint system-deps testbed clean

# ---------------------------------------------------------------- virtualenv
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled only when the project metadata changes (the install is editable).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# ---------------------------------------------------------------- run
up: $(VENV)/.installed
	$(BIN)/prefect-stacks up $(UP_ARGS)

down: $(VENV)/.installed
	$(BIN)/prefect-stacks down

# ---------------------------------------------------------------- test
# PostgreSQL 15 server binaries (for the pg backend tests) are on the machine image;
# terraform: on the image, or built by the test bed below (it is not a Debian package).
system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	[ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql-15"; \
	command -v psql >/dev/null || missing="$$missing postgresql-client-15"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Cold: tens of minutes on 2 cores (docs/testing.md has the measured times); warm: a
# second. Prints a line per component; a module the Go proxy refuses is reported and
# the rest is still built.
testbed:
	@command -v go >/dev/null || echo "testbed: go is not on PATH; only a complete cache will do"
	$(TESTBED_BUILD)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-test system-deps testbed lint
	PATH="$$PATH:$$($(TESTBED_BUILD) --path)" $(BIN)/python -m pytest \
	  -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
