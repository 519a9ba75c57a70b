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

.PHONY: explore test lint bench install-app install-test clean

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

explore: $(VENV)/.app
	$(VENV)/bin/gsop explore

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

# Notebooks join the run once the folder exists (a fresh clone before the tutorials land has none).
TEST_PATHS := tests $(wildcard notebooks)

test: lint
	$(PY) -m pytest --nbval-lax --nbval-current-env $(PYTEST_ARGS) $(TEST_PATHS)

bench: $(VENV)/.dev
	$(PY) benchmarks/sqrtm.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
