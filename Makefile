# Every target creates or refreshes .venv by itself, so `make serve` and
# `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TS_EXAMPLE := examples/typescript
TS_MODULES := $(TS_EXAMPLE)/node_modules/.package-lock.json
PROTOSET ?= pushhub.protoset

.PHONY: serve test proto proto-check protoset breaking ts-example lint bench venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The TypeScript example's packages, pinned by its package-lock.json. Its
# protoc-gen-es writes the TypeScript stubs of `make proto`.
$(TS_MODULES): $(TS_EXAMPLE)/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix $(TS_EXAMPLE)
	touch $@

ts-example: $(TS_MODULES)
	npm run --silent --prefix $(TS_EXAMPLE) build

serve: $(STAMP)
	$(BIN)/pushhub serve

# The suite twice: embedded SQLite, then PostgreSQL (started when its port is closed).
test: $(STAMP)
	scripts/run-tests.sh

# Stubs from protos/ by buf.gen.yaml (local plugins only): generated/python
# and the TypeScript example's src/gen, both committed.
proto: $(STAMP) $(TS_MODULES)
	scripts/buf.sh generate

# Fails when the committed stubs differ from what `make proto` produces.
proto-check: proto
	git diff --exit-code -- generated/ $(TS_EXAMPLE)/src/gen/
	test -z "$$(git status --porcelain -- generated/ $(TS_EXAMPLE)/src/gen/)"

# The contract with every import (google.rpc error details too), for grpcurl
# -protoset and other tools that read descriptor sets instead of reflection.
protoset:
	scripts/buf.sh build --as-file-descriptor-set -o '$(PROTOSET)#format=binpb'

# The contract against main's last one (scripts/buf-breaking.sh says which revision).
breaking:
	scripts/buf-breaking.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts examples
	scripts/buf.sh lint
	scripts/buf-breaking.sh
	$(MAKE) proto-check

bench: $(STAMP)
	$(BIN)/python -m benchmarks.registration
