# The two commands a newcomer needs: `make demo` (set up + run the main job locally) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per extra and pyproject.toml: `.[dev]` (tests, lint) or `.[local]` (the demos' AWS emulator only).
SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-dev-$(SUM)
LOCAL_STAMP := $(VENV)/.installed-local-$(SUM)
DEMO_DIR ?= out/demo

.PHONY: setup demo demo-sqlite test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-local-* $(VENV)/.installed-[0-9]*; touch $(STAMP) $(LOCAL_STAMP)

# dev has the emulator too: a venv set up for the tests needs nothing more for the demos.
$(LOCAL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[local]'
	rm -f $(VENV)/.installed-local-* $(VENV)/.installed-[0-9]*; touch $(LOCAL_STAMP)

setup: $(STAMP)

# The local Organization: an AWS emulator, the real rollout, a simulated workload through the aggregator path.
demo: $(LOCAL_STAMP)
	$(BIN)/python deploy.py --org-unit ou-demo --local

# The embedded store (SQLite): the same workload, bigger, ingested from a file.
demo-sqlite: $(LOCAL_STAMP)
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
	$(BIN)/mypy --strict deploy.py bench/ingest.py bench/dynamodb_flush.py bench/aggregator_reads.py bench/cost_per_million.py bench/capacity_meter.py

test: $(STAMP) lint typecheck
	$(BIN)/pytest -n 2 --durations=10 tests

bench: $(STAMP)
	$(BIN)/python bench/ingest.py $(ARGS)

clean:
	rm -rf $(VENV) out
