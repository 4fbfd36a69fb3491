# Two entry points that do all the set-up on a fresh machine (Python >= 3.10):
#   make demo   latbench's main job on its embedded default (no GPU needed), output in demo_out/
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test

setup: $(VENV)/.installed

# torch is pinned first so pip never reaches for a multi-GB CUDA build on a CPU-only machine.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	touch $@

demo: setup
	$(BIN)/latbench demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q
