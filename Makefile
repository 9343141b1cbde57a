# The two commands: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export FLASK_APP := wsgi

.DEFAULT_GOAL := help

help: ## List the make targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=python3.x")'
	@$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed-runtime: $(VENV)/.python-ok requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed-runtime ## Create .venv and install the runtime requirements

install-dev: $(VENV)/.installed-dev ## Install the development requirements too

migrate: install ## Apply database migrations (flask db upgrade)
	$(BIN)/flask db upgrade

run: install ## Migrate, create a demo admin, start API + worker + beat on 127.0.0.1:$(PORT)
	$(BIN)/flask db upgrade
	$(BIN)/flask users ensure-demo-admin
	@echo "Swagger UI: http://127.0.0.1:$(PORT)/docs  (API, Celery worker and beat below; Ctrl-C stops all)"
	$(BIN)/honcho start --procfile deploy/Procfile.dev --app-root . --port $(PORT)

lint: install-dev ## ruff (lint + format check), mypy and the layering contracts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: install-dev ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install-dev lint ## Lint, then the whole suite against real PostgreSQL and Redis
	$(BIN)/pytest

screenshot: install-dev ## Refresh docs/images/swagger-ui.png from the Swagger UI browser test
	$(BIN)/pytest tests/browser/test_swagger_ui.py -q
	mkdir -p docs/images && cp test-artifacts/swagger-ui.png docs/images/swagger-ui.png

bench: install-dev ## Benchmark suite (wrk, about 10 min) -> bench/results/latest.md
	$(BIN)/python -m bench.run

bench-quick: install-dev ## The same, a few seconds per scenario -> bench/results/quick.md
	BENCH_QUICK=1 $(BIN)/python -m bench.run

fuzz: install-dev ## Contract fuzzing at length (schemathesis; SCHEMATHESIS_MAX_EXAMPLES=100 by default)
	SCHEMATHESIS_MAX_EXAMPLES=$${SCHEMATHESIS_MAX_EXAMPLES:-100} $(BIN)/pytest tests/contract

soak: install-dev ## 10 min of mixed load through nginx, faults injected (SOAK_SECONDS) -> bench/results/soak-latest.md
	$(BIN)/python -m tests.soak

soak-quick: install-dev ## The soak in 60 s, each fault briefly -> bench/results/soak-quick.md
	SOAK_SECONDS=60 $(BIN)/python -m tests.soak

docker-test: install ## Build the image, bring up the compose stack, check a webhook end to end (needs Docker)
	$(BIN)/python deploy/docker_test.py

rename: $(VENV)/.python-ok ## Rename the service everywhere: make rename NAME="Acme Orders" SLUG=acme-orders
	@$(BIN)/python deploy/rename.py --name="$(NAME)" --slug="$(SLUG)"

resource: install ## Add a resource shaped like app/tasks: make resource NAME=notes (docs/adding-a-resource.md)
	$(BIN)/python deploy/scaffold_resource.py "$(NAME)" $(if $(SINGULAR),--singular="$(SINGULAR)") $(if $(MIGRATION_DATABASE_URL),--database-url="$(MIGRATION_DATABASE_URL)")

clean: ## Remove the virtualenv and caches (instance/ is kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

.PHONY: help install install-dev migrate run lint format test fuzz screenshot bench bench-quick soak soak-quick docker-test rename resource clean
