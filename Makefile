# Every target a user needs; `make help` lists them. Virtualenvs are created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LOCAL_VENV := .venv-localstack
PY := $(VENV)/bin/python
ENV ?=
ENVS := $(if $(ENV),--env $(ENV),--all)
DEMO_ENV := local
PORT ?= 4566

.DEFAULT_GOAL := help
.PHONY: help venv local-venv build lint test test-unit demo deploy plan outputs destroy \
        local-up local-down local-status clean

help: ## List every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(LOCAL_VENV)/.installed: requirements-localstack.txt
	@test -x $(LOCAL_VENV)/bin/python || $(PYTHON) -m venv $(LOCAL_VENV)
	$(LOCAL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-localstack.txt
	@touch $@

venv: $(VENV)/.installed ## Create the project virtualenv (.venv) from the pinned requirements

local-venv: $(LOCAL_VENV)/.installed ## Create LocalStack's own virtualenv (.venv-localstack)

build: venv ## Generate templates into build/ENV/ (all environments, or ENV=name)
	$(PY) -m templates_src $(ENVS)

lint: venv ## Generate, then cfn-lint every template in one process (fails on any finding)
	$(PY) -m templates_src $(ENVS) --lint

test: venv local-venv ## Run the whole test suite (starts and stops its own LocalStack)
	$(PY) -m pytest

test-unit: venv ## Run the tests that need no emulator
	$(PY) -m pytest -m "not localstack"

local-up: local-venv ## Start LocalStack in the background on PORT (default 4566)
	$(PY) tools/localstack.py up --port $(PORT)

local-down: ## Stop the background LocalStack
	$(PYTHON) tools/localstack.py down

local-status: ## Is the background LocalStack running?
	$(PYTHON) tools/localstack.py status --port $(PORT)

clean: ## Remove generated templates and LocalStack state (not the virtualenvs)
	rm -rf build/*/packaged.json .localstack .pytest_cache
