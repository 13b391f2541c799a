# Every target a user needs; `make help` lists them. Virtualenvs are created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LOCAL_VENV := .venv-localstack
SCAN_VENV := .venv-scan
SARIF ?=
JUNIT ?=
PY := $(VENV)/bin/python
ENV ?=
ENVS := $(if $(ENV),--env $(ENV),--all)
DEMO_ENV := local
PORT ?= 4566

.DEFAULT_GOAL := help
.PHONY: help venv local-venv scan-venv build lint scan test test-unit bench demo demo-down deploy plan outputs destroy \
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

$(SCAN_VENV)/.installed: requirements-scan.txt
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	@touch $@

venv: $(VENV)/.installed ## Create the project virtualenv (.venv) from the pinned requirements

local-venv: $(LOCAL_VENV)/.installed ## Create LocalStack's own virtualenv (.venv-localstack)

scan-venv: $(SCAN_VENV)/.installed ## Create checkov's own virtualenv (.venv-scan; its boto3 pin fights ours)

build: venv ## Generate templates into build/ENV/ (all environments, or ENV=name)
	$(PY) -m templates_src $(ENVS)

lint: venv ## Generate, then cfn-lint every template in one process (SARIF=path JUNIT=path: also reports)
	$(PY) -m templates_src $(ENVS) --lint $(if $(SARIF),--sarif $(SARIF)) $(if $(JUNIT),--junit $(JUNIT))

scan: build scan-venv ## Security-scan every built template with checkov (fails on any failed check)
	$(SCAN_VENV)/bin/checkov --directory build --framework cloudformation --skip-download \
		--skip-path 'packaged\.json$$' --compact --quiet

test: venv local-venv scan-venv ## Run the whole test suite (starts and stops its own LocalStack)
	$(PY) -m pytest

test-unit: venv scan-venv ## Run the tests that need no emulator
	$(PY) -m pytest -m "not localstack"

demo: venv local-venv ## Build, lint, start LocalStack, deploy `local`, print outputs (the quick start)
	$(PY) -m templates_src --env $(DEMO_ENV) --lint
	$(PYTHON) tools/localstack.py up --port $(PORT)
	AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) $(PY) deploy.py deploy --env $(DEMO_ENV)
	@echo
	@echo "Look around:  LOCALSTACK_HOST=127.0.0.1:$(PORT) $(LOCAL_VENV)/bin/awslocal cloudformation describe-stacks"
	@echo "              LOCALSTACK_HOST=127.0.0.1:$(PORT) $(LOCAL_VENV)/bin/awslocal ec2 describe-vpcs"
	@echo "              LOCALSTACK_HOST=127.0.0.1:$(PORT) $(LOCAL_VENV)/bin/awslocal s3 ls"
	@echo "Outputs:      AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) $(PY) deploy.py outputs --env $(DEMO_ENV) --json"
	@echo "Tear down:    make demo-down"

demo-down: venv ## Destroy the demo stack and stop LocalStack
	AWS_ENDPOINT_URL=http://127.0.0.1:$(PORT) $(PY) deploy.py destroy --env $(DEMO_ENV) --yes
	$(PYTHON) tools/localstack.py down

deploy: lint ## Deploy ENV to AWS (or to AWS_ENDPOINT_URL): make deploy ENV=dev
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=name"; exit 2; }
	$(PY) deploy.py deploy --env $(ENV)

plan: lint ## Show the change set for ENV without executing it
	@test -n "$(ENV)" || { echo "usage: make plan ENV=name"; exit 2; }
	$(PY) deploy.py plan --env $(ENV)

outputs: venv ## Print ENV's stack outputs
	@test -n "$(ENV)" || { echo "usage: make outputs ENV=name"; exit 2; }
	$(PY) deploy.py outputs --env $(ENV)

destroy: venv ## Delete ENV's stack (asks first; production needs --yes)
	@test -n "$(ENV)" || { echo "usage: make destroy ENV=name"; exit 2; }
	$(PY) deploy.py destroy --env $(ENV)

bench: venv local-venv ## Time generate, lint, deploy vs cfn-lint and the AWS CLI on LocalStack (about 4 min)
	$(PY) tools/bench.py $(BENCH_ARGS)

local-up: local-venv ## Start LocalStack in the background on PORT (default 4566)
	$(PYTHON) tools/localstack.py up --port $(PORT)

local-down: ## Stop the background LocalStack
	$(PYTHON) tools/localstack.py down

local-status: ## Is the background LocalStack running?
	$(PYTHON) tools/localstack.py status --port $(PORT)

clean: local-down ## Stop LocalStack; remove packaged templates, its state, reports (not the virtualenvs)
	rm -rf build/*/packaged.json .localstack .pytest_cache reports
