# meterlake: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
#: the lock: every package and version `make install` installs (see `make lock`)
CONSTRAINTS := constraints/constraints-$(PYVER).txt

#: the project's own source folders (pyproject.toml's package-dir): their bytecode is
#: compiled at install (and before a benchmark), so a process started where Python writes
#: no bytecode (PYTHONDONTWRITEBYTECODE, as in containers) does not compile the modules it
#: imports from source every time (~0.15 s of CPU in a run's process, as much in its docs helper)
SOURCES := meterlake transforms schemas checks config

.PHONY: install lock demo test test-fast lint bench docs clean bytecode

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"meterlake needs Python 3.11+, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -f $(CONSTRAINTS) ]; then \
		echo "installing the locked versions of $(CONSTRAINTS)"; \
		$(BIN)/python -m pip install --quiet -e '.[test]' -c $(CONSTRAINTS); \
	else \
		echo "no lock for Python $(PYVER) ($(CONSTRAINTS)): installing the newest versions pyproject.toml allows"; \
		$(BIN)/python -m pip install --quiet -e '.[test]'; \
	fi
	$(BIN)/python -m compileall -q $(SOURCES)
	@touch $(STAMP)

## bytecode: compile the sources' bytecode again (only files changed since: quick)
bytecode: install
	$(BIN)/python -m compileall -q $(SOURCES)

## lock: re-resolve the dependencies in a fresh virtualenv (newest versions pyproject.toml
## allows) and rewrite the lock constraints/constraints-<python>.txt; then `make test`
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	.lock-venv/bin/python scripts/lock.py
	rm -rf .lock-venv

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
bench: bytecode
	$(BIN)/python benchmarks/county_day.py

## docs: regenerate the data dictionary from schemas/ (a test fails when it is stale)
docs: install
	$(BIN)/python -m meterlake.dictionary

clean:
	rm -rf demo .airflow .pytest_cache .hypothesis
