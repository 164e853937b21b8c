# feedlake: one command each for setup, demo, lint, types and tests (CI runs `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := infra/constraints.txt
# The install is redone when the metadata, the constraints or the set of modules changes: the strict
# editable install links each module file, so a new module needs a new link.
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml $(CONSTRAINTS); find api flows tasks schemas -name '*.py' -o -name '*.yml' -o -name '*.json' | sort) | cksum | cut -d' ' -f1)

.PHONY: help setup demo test lint format types pytest test-tools bench bench-quick bench-validation bench-backfill bench-prefect-history clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# strict: the modules are linked under feedlake/ (build/__editable__*), so mypy and every tool see
	# exactly the installed package, never the top-level folders as packages of their own.
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --config-settings editable_mode=strict -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) ## create .venv and install feedlake with its dev tools (with infra/constraints.txt)

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

pytest: $(STAMP) test-tools ## the test suite
	$(BIN)/python -m pytest

# Two tests use programs from Debian: the HTML report test loads the page in headless Chromium, and
# the infra test runs `docker-compose config`. Install them when we can.
test-tools: ## install chromium and docker-compose if missing (root with apt-get; else those checks skip)
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get) for the browser and infra tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "not installed and cannot be installed here:$$missing (those checks will be skipped)"; \
	fi

bench: $(STAMP) ## every benchmark, one after another: prints one table, writes bench/results/bench.{json,md}
	$(BIN)/python bench/run.py

bench-quick: $(STAMP) ## the same at small sizes, one run each (a smoke test of the harness)
	$(BIN)/python bench/run.py --quick

bench-validation: $(STAMP) ## GX validation timings (10,000-row batch, share of a corpus poll)
	$(BIN)/python bench/validation.py

bench-backfill: $(STAMP) ## backfill of 1,000,000 synthetic articles, 1 and 2 processes
	$(BIN)/python bench/backfill.py

bench-prefect-history: $(STAMP) ## how fast `feedlake serve`'s Prefect database grows (1 and 20 sources, 30 s polls)
	$(BIN)/python bench/prefect_history.py

clean: ## remove the virtualenv, the demo lake and caches
	rm -rf $(VENV) lake .pytest_cache .mypy_cache .ruff_cache
