# One entry point for humans and CI. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test test-all check bench clean

setup: $(VENV)/.installed

# torch first and pinned: pip's find-links hold the local 2.13.0 CPU wheel on these machines, and
# with it installed the `torch>=2.13,<2.14` range in pyproject.toml pulls nothing else (a GPU
# machine keeps its own CUDA build). Elsewhere, for CPU only, add
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68,<81" wheel
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/musicdata demo

test: setup
	$(BIN)/python -m pytest

test-all: setup
	$(BIN)/python -m pytest -m ""

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Every benchmark at a quick size, then one table (docs/benchmarks.md); BENCH_ARGS=--long for
# the full sizes, BENCH_ARGS="--only e2e,views" for a subset.
bench: setup
	$(BIN)/python benchmarks/bench_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) musicdata-home .pytest_cache .ruff_cache
