# Two commands for a fresh machine (see README):
#   make smoke   set up .venv and run the workflow on the CPU smoke profile
#   make test    set up .venv and run the test suite
# The environment comes from a hashed lock (docs/install.md): lock/pylock.toml (CPU build of
# torch), or on GPU machines lock/pylock-cuda.toml (CUDA torch and Molmo v1's extra):
#   make setup VARIANT=cuda   install the GPU lock instead (then `make test VARIANT=cuda`, ...)
#   make lock                 re-resolve lock/pylock.toml after changing a pin in pyproject.toml
#                             or constraints-cpu.txt (`make lock VARIANT=cuda`: the GPU lock)
VENV ?= .venv
PYTHON ?= python3
VARIANT ?= cpu
# no: install the lock only, not promptlam itself (the container image: jobs run the checkout's src)
INSTALL_PROJECT ?= yes
LOCK := $(if $(filter cuda,$(VARIANT)),lock/pylock-cuda.toml,lock/pylock.toml)
PYLOCK = $(PYTHON) lock/pylock.py
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
setup: $(VENV)/.installed-$(VARIANT)

# A new .venv holding exactly the lock: every file hash-checked, nothing resolved at install time.
# `venv --clear` also removes the other variant's stamp, so switching variants reinstalls.
$(VENV)/.installed-$(VARIANT): $(LOCK) pyproject.toml constraints-cpu.txt lock/pylock.py
	$(PYLOCK) check --python --variant $(VARIANT)
	$(PYTHON) -m venv --clear $(VENV)
	$(PYLOCK) requirements --variant $(VARIANT) --only pip --only setuptools > $(VENV)/lock-tools.txt
	$(PYLOCK) requirements --variant $(VARIANT) --only torch > $(VENV)/lock-torch.txt
	$(PYLOCK) requirements --variant $(VARIANT) --exclude pip --exclude setuptools --exclude torch > $(VENV)/lock-rest.txt
	$(PIP_INSTALL) -r $(VENV)/lock-tools.txt
	$(PIP_INSTALL) -r $(VENV)/lock-torch.txt 2>/dev/null || { \
	  echo "No local copy of the locked build of torch; fetching it from $(TORCH_INDEX)"; \
	  $(PIP_INSTALL) -r $(VENV)/lock-torch.txt --extra-index-url $(TORCH_INDEX); }
	$(PIP_INSTALL) --no-build-isolation -r $(VENV)/lock-rest.txt
	if [ "$(INSTALL_PROJECT)" = yes ]; then $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .; fi
	$(BIN)/python -m pip check
	touch $@
endif

smoke: setup
	$(BIN)/snakemake --profile profiles/smoke

test: setup
	$(BIN)/python -m pytest

# Re-resolve the variant's lock from pyproject.toml with `pip lock`.
lock:
	$(PYLOCK) generate --variant $(VARIANT) --torch-index $(TORCH_INDEX)

# Both locks match pyproject.toml and hash every file (standard library only).
lock-check:
	$(PYLOCK) check --variant cpu
	$(PYLOCK) check --variant cuda

# Regenerate the config schema and key reference after editing src/promptlam/config.py.
schema: setup
	$(BIN)/python -m promptlam config schema --out schemas/config.schema.json
	$(BIN)/python -m promptlam config docs --out docs/config.md
