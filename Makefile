# Every target creates or refreshes .venv by itself, so `make serve` and
# `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard protos/pushhub/v1/*.proto)

.PHONY: serve test test-sqlite test-postgres proto proto-check lint bench venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/pushhub serve

# The suite twice: embedded SQLite, then PostgreSQL (started when its port is closed).
test: $(STAMP)
	scripts/run-tests.sh

proto: $(STAMP)
	scripts/gen-protos.sh $(BIN)/python

# Fails when the committed stubs differ from what `make proto` produces.
proto-check: proto
	git diff --exit-code -- generated/
	test -z "$$(git status --porcelain -- generated/)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	scripts/buf.sh lint
	$(MAKE) proto-check

bench: $(STAMP)
	$(BIN)/python -m benchmarks.registration
