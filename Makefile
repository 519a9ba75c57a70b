# The README's two commands: `make explore` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Versions known to install and pass here; override for another CUDA or CPU build, e.g.
# `make test TORCH="torch torchvision"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# Notebooks and demos shrink to CI size unless GSOP_FAST=0 is given.
GSOP_FAST ?= 1
export GSOP_FAST

.PHONY: explore test lint docs bench notebooks install-app install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install -q $(TORCH)
	@touch $@

$(VENV)/.app: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[app]"
	@touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[dev]"
	@touch $@ $(VENV)/.app

install-app: $(VENV)/.app
install-test: $(VENV)/.dev

# The explorer opens on a bundled checkpoint (GSoP-Net1 on Fashion-MNIST) unless CHECKPOINT names
# another bundled name or a .safetensors path.
CHECKPOINT ?= fmnist_small_gsop1
explore: $(VENV)/.app
	$(VENV)/bin/gsop explore --checkpoint $(CHECKPOINT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# The notebooks run with nbval in its comparing mode: every output not marked NBVAL_IGNORE_OUTPUT
# must match the committed one (addresses and timings are sanitised). One thread keeps their
# floating-point results identical to the committed run.
NBVAL := -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

# The documentation site (MkDocs): the manual in docs/, the API reference rendered from the
# docstrings, the committed notebooks as they are (nothing executed, nothing fetched). `make test`
# builds it with --strict in tests/test_docs.py.
docs: $(VENV)/.dev
	$(VENV)/bin/mkdocs build --strict

test: lint
	$(PY) -m pytest $(PYTEST_ARGS) tests
	OMP_NUM_THREADS=1 $(PY) -m pytest $(NBVAL) $(PYTEST_ARGS) notebooks

# Re-execute the notebooks and their solutions in place (then commit the outputs).
notebooks: $(VENV)/.dev
	OMP_NUM_THREADS=1 $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 notebooks/[0-9]*.ipynb notebooks/solutions/*.ipynb

# The CPU benchmarks behind the tables in docs/benchmarks.md, one after another (about 7 minutes on 2 cores;
# run them on a quiet machine). benchmarks/gpu.py is the GPU suite.
bench: $(VENV)/.app $(VENV)/.dev
	$(PY) benchmarks/sqrtm.py
	$(PY) benchmarks/blocks.py
	$(PY) benchmarks/mixture.py
	$(PY) benchmarks/loader.py
	$(PY) benchmarks/probe.py
	$(PY) benchmarks/explorer.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site .cache
