# gradserve: `make` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.DEFAULT_GOAL := help
.PHONY: help install run worker test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv/ with everything the project needs

$(VENV)/.installed: pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]" -e ./client  # the client gives .venv/bin/gradserve
	touch $@

run: install  ## the whole stack on 127.0.0.1:$PORT (private Redis, API, workers); Ctrl-C stops it
	$(BIN)/python -m service.stack

worker: install  ## one more worker, for the Redis at $REDIS_URL (else var/redis-url's)
	$(BIN)/python -m service.worker

test: install  ## the whole test suite, starting its own Redis, API and workers
	$(BIN)/python -m pytest

lint: install  ## ruff check and format check; import-linter's contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: install  ## benchmarks, as ratios against baselines measured in the same run
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench

clean:  ## remove the virtualenv, caches and local data
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis .import_linter_cache
