# The two commands a newcomer needs: `make demo` (set up + run the main job locally) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_DIR ?= out/demo

.PHONY: setup demo demo-sqlite test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

# The local Organization: an AWS emulator, the real rollout, a simulated workload through the aggregator path.
demo: $(STAMP)
	$(BIN)/python deploy.py --org-unit ou-demo --local

# The embedded store (SQLite): the same workload, bigger, ingested from a file.
demo-sqlite: $(STAMP)
	mkdir -p $(DEMO_DIR)
	rm -f $(DEMO_DIR)/batchops.db*
	$(BIN)/batchops simulate --accounts 3 --regions 2 --jobs 2000 --seed 7 --chaos > $(DEMO_DIR)/events.jsonl
	$(BIN)/batchops --store sqlite:///$(DEMO_DIR)/batchops.db ingest $(DEMO_DIR)/events.jsonl --emf-out $(DEMO_DIR)/emf.jsonl
	$(BIN)/batchops --store sqlite:///$(DEMO_DIR)/batchops.db summary

lint: $(STAMP)
	$(BIN)/ruff check shared tests bench deploy.py
	$(BIN)/ruff format --check shared tests bench deploy.py

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict deploy.py bench/ingest.py bench/dynamodb_flush.py

test: $(STAMP) lint typecheck
	$(BIN)/pytest -n 2 tests

bench: $(STAMP)
	$(BIN)/python bench/ingest.py $(ARGS)

clean:
	rm -rf $(VENV) out
