# ExfilGuard developer entry points. `make scan` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: scan test lint bench clean install checkov docs lock

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

install: $(STAMP)

checkov: $(CHECKOV_STAMP)

scan: $(STAMP)
	$(BIN)/exfilguard scan --snapshot samples/drifted-subscription.json

# Recompile the locks from pyproject.toml (keeps existing pins; add --upgrade-package NAME to move one).
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.txt pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra cli --extra dev -o requirements-dev.txt pyproject.toml

docs: $(STAMP)
	$(BIN)/exfilguard rules --format markdown > docs/rules.md
	$(BIN)/python -m exfilguard.cli.roles --update docs/deploy.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)
	scripts/ensure-chromium.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	scripts/with-azurite.sh $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m compileall -q exfilguard function_app.py
	scripts/with-azurite.sh $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) node_modules .pytest_cache bench/results.json
