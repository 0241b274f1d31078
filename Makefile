# prefect-stacks: `make up` runs it on this machine, `make test` tests it.
#
#   make up      virtualenv + package, then `prefect-stacks up` (Prefect server, worker,
#                blocks, deployments on http://127.0.0.1:4200; Ctrl-C stops it all)
#   make down    stop what `prefect-stacks up --detach` left running
#   make test    virtualenv + test extras + system packages the tests need, then
#                ruff (lint + format check) and pytest (unit, integration, e2e)
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

# Debian packages the tests need; checked with dpkg, installed only if missing.
# docker.io: dockerd, started by the tests themselves (image builds); docker-registry:
# Distribution, the registry images are pushed to; apache2-utils: htpasswd for its login.
APT_PACKAGES ?= git docker.io docker-registry apache2-utils

.PHONY: up down test lint system-deps clean

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
# terraform is on the image too (it is not a Debian package).
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
	@command -v terraform >/dev/null || echo "warning: terraform is not on PATH (e2e and integration tests need it)"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-test system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
