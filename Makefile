# The README's two commands: `make run` and `make test`. Everything they need
# (uv, the locked environment, a browser for the end-to-end tests) is
# installed on first use, so a machine with only Python 3.12 and pip is enough.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Use uv from PATH when it works, else a private copy in .tools/.
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --locked
# Postgres for the second test pass; unset it (TEST_POSTGRES_URL=) to skip.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_POSTGRES_URL

.PHONY: help install run run-offline test test-postgres test-django52 e2e screenshot lint typecheck format bench browser clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

install: $(if $(filter uv,$(UV)),,$(CURDIR)/.tools/bin/uv) ## Create .venv from uv.lock.
	$(UV) sync --locked --quiet --compile-bytecode

run: install ## Migrate, create a local user, run web + worker (Ctrl-C stops both).
	$(RUN) python -m devtools.run

run-offline: install ## `make run` with a local stand-in ntfy server: nothing leaves the machine.
	NTFY_URL=local $(RUN) python -m devtools.run

browser: install ## Make sure a Chromium for the end-to-end tests is there.
	@$(RUN) python -m devtools.browser

test: install browser ## Lint, check, type check and run the whole suite (SQLite, and Postgres if reachable, side by side).
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	DJANGO_SETTINGS_MODULE=tests.settings $(RUN) python manage.py check --fail-level WARNING
	DJANGO_SETTINGS_MODULE=tests.settings $(RUN) python manage.py makemigrations --check --dry-run
	$(RUN) python -m devtools.passes

test-postgres: install ## Rerun the database tests on Postgres (TEST_POSTGRES_URL).
	$(RUN) python -m devtools.passes --only postgres

test-django52: install ## Run the dbtasks tests on Django 5.2 LTS with the django-tasks backport.
	$(UV) venv --quiet --allow-existing --python 3.12 .venv-django52
	$(UV) pip install --quiet --compile-bytecode --python .venv-django52/bin/python -r requirements/django52.txt
	DJANGO_SETTINGS_MODULE=tests.settings_django52 .venv-django52/bin/pytest -p no:randomly \
		-o DJANGO_SETTINGS_MODULE=tests.settings_django52 tests/dbtasks

e2e: install browser ## Only the browser tests (screenshots go to test-artifacts/).
	$(RUN) pytest tests/e2e

screenshot: install browser ## Refresh docs/screenshot.png from the browser tests.
	DOCS_SCREENSHOT=1 $(RUN) pytest tests/e2e -k tour

lint: install ## ruff check and format check.
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install ## mypy with the django-stubs plugin (settings in pyproject.toml).
	$(RUN) mypy

format: install ## Fix what ruff can.
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: install ## Run the benchmarks in bench/ (minutes; not part of make test).
	BENCH_UV="$(UV)" BENCH_COMMAND="make bench" $(RUN) python -m bench $(BENCH_ARGS)

clean: ## Remove the environments and local databases.
	rm -rf .venv .tools db.sqlite3* staticfiles .pytest_cache test-artifacts
