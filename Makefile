# DigitOps tasks. `make` lists them; `make test` is the test command, `make up` the stack.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= training,serving,webui,tracking-server,dev
# The real MNIST files where this checkout sits beside ../shared; elsewhere the loader
# downloads them into the user cache and verifies them.
export MNIST_DIR ?= $(if $(wildcard ../shared/data/mnist/t10k-images-idx3-ubyte.gz),$(abspath ../shared/data/mnist))
# The same for USPS and Semeion, the real writers every run is measured on.
export REAL_WRITERS_DIR ?= $(if $(wildcard ../shared/data/real-writers/semeion.data),$(abspath ../shared/data/real-writers))
PYTEST_ARGS ?=

.PHONY: help install tools lock lint test test-e2e test-containers train promote list up down bench clean

help: ## list the tasks
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed ## create .venv and install every service's pinned dependencies

# checkov's pins clash with ours (k8s/checkov-requirements.txt says which): a venv of its own.
$(VENV)-checkov/.installed: k8s/checkov-requirements.txt
	python3 -m venv $(VENV)-checkov
	$(VENV)-checkov/bin/pip install --quiet -r k8s/checkov-requirements.txt
	touch $@

tools: $(VENV)-checkov/.installed ## checkov, the policy linter tests/k8s runs, in .venv-checkov

lock: ## re-resolve pyproject.toml's ranges and rewrite constraints.txt
	rm -rf $(VENV)-lock && python3 -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet '.[$(EXTRAS)]'
	{ sed -n '1,2p' constraints.txt; $(VENV)-lock/bin/pip freeze --exclude digitops; } > constraints.new
	mv constraints.new constraints.txt && rm -rf $(VENV)-lock

lint: install ## ruff and hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint --config .hadolint.yaml docker/*.Dockerfile

test: install tools ## every test layer: unit, integration, contract, browser, make up, compose, containers
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-e2e: install ## only the end-to-end tests: the browser, and make up
	$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

test-containers: install ## only the container tests: build every image, run the compose stack
	$(VENV)/bin/pytest -m containers $(PYTEST_ARGS)

up: install ## the stack without Docker: MLflow, a first model, TF Serving, web UI (Ctrl-C stops)
	$(PY) -m devstack up

down: ## stop a `make up` running in the background; one in the foreground stops with Ctrl-C
	$(PY) -m devstack down

# train, promote and list act on the stack `make up` runs: its MLflow server, and the
# models/models.config its TF Serving reads, whose base path is this folder's models/.
train promote list: export MLFLOW_TRACKING_URI ?= http://localhost:$(or $(MLFLOW_PORT),5000)
train promote list: export SERVING_BASE_PATH ?= $(CURDIR)/models/$(or $(MODEL_NAME),mnist)

train: install ## train a model, full profile unless ARGS="--profile quick" (or other flags)
	$(PY) -m training train $(ARGS)

promote: install ## make a version the champion (ARGS="--version N")
	$(PY) -m training promote $(ARGS)

list: install ## registered versions, accuracy, aliases
	$(PY) -m training list

bench: install ## every benchmark in bench/ (minutes; prints numbers, writes results/)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## remove caches (keeps mlruns/ and models/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
