# Included by the root Makefile and by every package Makefile (through package.mk).
# Holds what both need: where the repo is, which interpreter builds the venvs, and the root
# tools environment.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)

# The interpreter for every venv. `make install PYTHON=python3.13` picks one; it is recorded in
# .make/python-id, and later commands (package Makefiles too) keep using it until PYTHON is
# given again, so `cd apps/sts-service && make test` never rebuilds a venv with another Python.
PYTHON_ID := $(ROOT)/.make/python-id
PYTHON ?= $(or $(firstword $(file <$(PYTHON_ID))),python3)
TOOLS_VENV := $(ROOT)/.venv
TOOLS_PY := $(TOOLS_VENV)/bin/python
TOOLS_STAMP := $(TOOLS_VENV)/.installed
WORKSPACE := $(TOOLS_PY) $(ROOT)/scripts/workspace.py --python $(PYTHON) $(if $(VERBOSE),--verbose)

.PHONY: FORCE
FORCE:

# Re-checked on every install (~20 ms), rewritten only when the interpreter changes: its mtime
# is a prerequisite of every venv stamp, so `PYTHON=...` rebuilds the venvs and nothing else does.
ifeq ($(PYTHON_ID_FRESH),1)
$(PYTHON_ID): ;  # a parent make checked it moments ago, in this same run
else
$(PYTHON_ID): FORCE
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: PYTHON=$(PYTHON) was not found. Install Python >= 3.10 or pass PYTHON=/path/to/python3.X" \
	    "(the last one used is remembered in .make/python-id)" >&2; \
	  exit 1; }
	@$(PYTHON) $(ROOT)/scripts/mk/check_python.py $@
endif

$(TOOLS_STAMP): $(ROOT)/pyproject.toml $(PYTHON_ID)
	@$(PYTHON) $(ROOT)/scripts/workspace.py --python $(PYTHON) $(if $(VERBOSE),--verbose) install-tools

# `make help`: every target with a `## description` on its rule line, from every makefile read.
define print_help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
endef
