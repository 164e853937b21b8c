# feedlake: one command each for setup, demo, lint, types and tests (CI runs `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help setup demo test lint format types pytest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) ## create .venv and install feedlake with its dev tools

demo: $(STAMP) ## poll the bundled real feed snapshots over local HTTP into ./lake
	$(BIN)/feedlake demo --lake ./lake

test: lint types pytest ## lint, type-check and run every test (what CI runs)

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: $(STAMP) ## mypy (strict on tasks/ and schemas/)
	$(BIN)/mypy

pytest: $(STAMP) ## the test suite
	$(BIN)/python -m pytest

clean: ## remove the virtualenv, the demo lake and caches
	rm -rf $(VENV) lake .pytest_cache .mypy_cache .ruff_cache
