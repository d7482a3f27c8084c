# pfgraph entry points. Everything runs in a local virtual environment (.venv).
PY ?= python3
VENV ?= .venv
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch: whichever build pip finds (the CPU wheel where pip is configured with a local one; PyPI's
	# Linux default is the multi-GB CUDA build). TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU
	# build elsewhere, or a CUDA index for a GPU build (README, Quickstart).
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# pfgraph, its test tools, CERN ROOT (the tests read every output file with ROOT itself), ONNX and Snakemake
	$(BIN)/pip install -q -e '.[dev,root,onnx,study]'
	# torch-cluster is a source package: compiled once against torch (~13 min on 2 cores; pip caches the wheel)
	$(BIN)/pip install -q --no-build-isolation torch-cluster
	touch $(STAMP)

install: $(STAMP)  ## set up .venv with pfgraph and all dependencies

demo: install  ## the main job: small end-to-end run on CPU (simulate, train, evaluate, report)
	$(BIN)/pfgraph demo --out demo

test: install  ## the default test suite (fast; excludes slow tests)
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: install  ## every test including slow ones
	$(BIN)/python -m pytest -q

bench: install  ## slow tests (e.g. the real-Snakemake study), then benchmarks -> docs/BENCHMARKS.md (each script updates its own section)
	$(BIN)/python -m pytest -q -m "slow and not gpu"
	$(BIN)/python scripts/bench_simulate.py
	$(BIN)/python scripts/bench_io.py
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_graph.py
	$(BIN)/python scripts/bench_antikt.py
	$(BIN)/python scripts/bench_predict.py

lint: install
	$(BIN)/ruff check pfgraph tests scripts

clean:
	rm -rf $(VENV) demo .pytest_cache
