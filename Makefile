# Two entry points that do all the set-up on a fresh machine (Python >= 3.10):
#   make demo   latbench's main job on its embedded default (no GPU needed), output in demo_out/
#   make test   the test suite (what CI runs)
#   make check-install   a plain `pip install .` (no extras, not editable) in its own venv runs the CLI
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check-install

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

# What `pip install latbench` gives a user: no extras, no editable checkout on the path (run from
# /tmp so the source tree cannot stand in for a missing package file or an undeclared dependency).
PLAIN := .venv-plain
check-install:
	rm -rf $(PLAIN)
	$(PYTHON) -m venv $(PLAIN)
	$(PLAIN)/bin/pip install --quiet --upgrade pip
	$(PLAIN)/bin/pip install --quiet "torch==2.13.0"
	$(PLAIN)/bin/pip install --quiet .
	cd /tmp && $(CURDIR)/$(PLAIN)/bin/latbench --help > /dev/null
	cd /tmp && $(CURDIR)/$(PLAIN)/bin/latbench info > /dev/null
	cd /tmp && $(CURDIR)/$(PLAIN)/bin/latbench arch show timm:efficientnet_b0 > /dev/null
	cd /tmp && $(CURDIR)/$(PLAIN)/bin/latbench predict gpunet-1 --table $(CURDIR)/tables/cpu-torch-fp32-b1.jsonl
	cd /tmp && $(CURDIR)/$(PLAIN)/bin/latbench sample --space fbnet --n 16 --table $(CURDIR)/tables/cpu-torch-fp32-b1.jsonl > /dev/null
	rm -rf $(PLAIN)
