# meterlake: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"meterlake needs Python 3.11+, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

## demo: generate a sample landing zone, run the daily DAGs with `airflow dags test`
## (SQLite), publish to DuckDB and print where everything is
demo: install
	@bash scripts/demo.sh

## test: the whole suite (unit, property, golden, DAG import and end-to-end)
test: install
	$(BIN)/python -m pytest

## lint: ruff (lint and format check) and mypy, configured in pyproject.toml
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py

## test-fast: everything but the slow end-to-end tests
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

## bench: county-scale benchmarks (500k meters); see benchmarks/README.md
bench: install
	$(BIN)/python benchmarks/county_day.py

## docs: regenerate the data dictionary from schemas/ (a test fails when it is stale)
docs: install
	$(BIN)/python -m meterlake.dictionary

clean:
	rm -rf demo .airflow .pytest_cache .hypothesis
