# Every target creates and uses .venv itself; a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=
LINT_PATHS := src tests $(wildcard bench)

.PHONY: demo test lint bench fmt clean

# Real Web of Things runtimes the tests adopt (tests/peers); node-wot comes from npm, when
# there is an npm (the tests say so and skip without it, except under CI).
NPM := $(shell command -v npm 2>/dev/null)
NODE_PEERS := $(if $(NPM),tests/peers/node-wot/node_modules/.installed)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "iotas needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/iotas demo

tests/peers/node-wot/node_modules/.installed: tests/peers/node-wot/package-lock.json
	npm ci --prefix tests/peers/node-wot --no-audit --no-fund --loglevel=error
	@touch $@

test: $(STAMP) $(NODE_PEERS)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/converge.py
	$(BIN)/python bench/identity.py

clean:
	rm -rf $(VENV) iotas-data .pytest_cache .mypy_cache .ruff_cache tests/peers/node-wot/node_modules
