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

# Tools built from Go modules when the machine lacks them, cached outside the checkout so
# a fresh clone on the same machine reuses them (../shared/K8S-TESTBED.md). Terraform:
# the one on PATH if there is one; else v1.5.7 (the last MPL release) from its module.
TESTBED ?= $(HOME)/.cache/prefect-stacks/testbed
TERRAFORM_VERSION ?= v1.5.7
TERRAFORM_DIR := $(TESTBED)/terraform-$(TERRAFORM_VERSION)

.PHONY: up down test lint system-deps terraform clean

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

# terraform for the tests: on PATH, or built once into $(TERRAFORM_DIR) (about 3 minutes
# on 2 cores) and put at the end of PATH for pytest.
terraform:
	@if command -v terraform >/dev/null; then \
	  echo "terraform: $$(command -v terraform)"; \
	elif [ -x "$(TERRAFORM_DIR)/terraform" ]; then \
	  echo "terraform: $(TERRAFORM_DIR)/terraform (cached)"; \
	else \
	  command -v go >/dev/null || { echo "error: no terraform on PATH and no go to build it" >&2; exit 1; }; \
	  echo "terraform: building $(TERRAFORM_VERSION) from its Go module into $(TERRAFORM_DIR) (once)"; \
	  GOBIN="$(TERRAFORM_DIR)" GOFLAGS=-trimpath go install -ldflags "-s -w" \
	    github.com/hashicorp/terraform@$(TERRAFORM_VERSION); \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-test system-deps terraform lint
	PATH="$$PATH:$(TERRAFORM_DIR)" $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
