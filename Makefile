# Two commands for a fresh machine (see README):
#   make smoke   set up .venv and run the workflow on the CPU smoke profile
#   make test    set up .venv and run the test suite
# The environment comes from one hashed lock, lock/pylock.toml (docs/install.md):
#   make lock    re-resolve it after changing a pin in pyproject.toml or constraints-cpu.txt
VENV ?= .venv
PYTHON ?= python3
LOCK := lock/pylock.toml
# Where the CPU build of torch is published; asked only when pip finds no local copy of it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_INSTALL = $(BIN)/python -m pip install --quiet --require-hashes --no-deps

.PHONY: setup smoke test schema lock lock-check

ifdef PROMPTLAM_NIX_PYTHON
# Inside `nix develop` or `nix run`: the flake built the environment from the same lock; no .venv,
# no pip.
BIN := $(patsubst %/,%,$(dir $(PROMPTLAM_NIX_PYTHON)))
setup:
	@echo "Python environment built by Nix from $(LOCK): $(BIN) (.venv is not used)"
else
BIN := $(VENV)/bin
setup: $(VENV)/.installed

# A new .venv holding exactly the lock: every file hash-checked, nothing resolved at install time.
$(VENV)/.installed: $(LOCK) pyproject.toml constraints-cpu.txt lock/pylock.py
	$(PYTHON) lock/pylock.py check --python
	$(PYTHON) -m venv --clear $(VENV)
	$(PYTHON) lock/pylock.py requirements --only pip --only setuptools > $(VENV)/lock-tools.txt
	$(PYTHON) lock/pylock.py requirements --only torch > $(VENV)/lock-torch.txt
	$(PYTHON) lock/pylock.py requirements --exclude pip --exclude setuptools --exclude torch > $(VENV)/lock-rest.txt
	$(PIP_INSTALL) -r $(VENV)/lock-tools.txt
	$(PIP_INSTALL) -r $(VENV)/lock-torch.txt 2>/dev/null || { \
	  echo "No local copy of the locked CPU build of torch; fetching it from $(TORCH_INDEX)"; \
	  $(PIP_INSTALL) -r $(VENV)/lock-torch.txt --extra-index-url $(TORCH_INDEX); }
	$(PIP_INSTALL) --no-build-isolation -r $(VENV)/lock-rest.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@
endif

smoke: setup
	$(BIN)/snakemake --profile profiles/smoke

test: setup
	$(BIN)/python -m pytest

# Re-resolve lock/pylock.toml from pyproject.toml (not the `molmo` extra) with `pip lock`.
lock:
	$(PYTHON) lock/pylock.py generate --torch-index $(TORCH_INDEX)

# The lock matches pyproject.toml and hashes every file (standard library only).
lock-check:
	$(PYTHON) lock/pylock.py check

# Regenerate the config schema and key reference after editing src/promptlam/config.py.
schema: setup
	$(BIN)/python -m promptlam config schema --out schemas/config.schema.json
	$(BIN)/python -m promptlam config docs --out docs/config.md
