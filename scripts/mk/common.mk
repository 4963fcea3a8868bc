# Included by the root Makefile and every package Makefile: the repo, its interpreter, the tools env.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)

# The interpreter for every venv: `PYTHON=...` picks it, and it stays recorded in .make/python-id
# ("<path> <version>") until PYTHON is given again.
PYTHON_ID := $(ROOT)/.make/python-id
PYTHON_IDENTITY := $(file <$(PYTHON_ID))
PYTHON_RECORDED := $(firstword $(PYTHON_IDENTITY))
# An empty PYTHON (say, `PYTHON=` in the environment) counts as not given.
ifeq ($(strip $(PYTHON)),)
PYTHON := $(or $(PYTHON_RECORDED),python3)
endif
TOOLS_VENV := $(ROOT)/.venv
TOOLS_PY := $(TOOLS_VENV)/bin/python
TOOLS_STAMP := $(TOOLS_VENV)/.installed

# LOCKED=0: resolve freely instead of the lock (not remembered). ENGINES=1: add each package's
# `engines` extra (remembered until ENGINES=0).
LOCKED ?= 1
ENGINES ?= $(or $(firstword $(file <$(ROOT)/.make/engines)),0)
WORKSPACE_ARGS := --python $(PYTHON) $(if $(VERBOSE),--verbose) $(if $(filter 0,$(LOCKED)),--unlocked)
# From the tools env: on Python 3.10 the installer reads TOML with the tools env's tomli.
WORKSPACE := $(TOOLS_PY) $(ROOT)/scripts/workspace.py $(WORKSPACE_ARGS)

# SLOW=1 (`make test-all`, CI) adds the tests marked `slow` (seconds of real time each).
SLOW ?= 0
SLOW_FILTER := $(if $(filter 1,$(SLOW)),,-m "not slow")

# $(call remember,FILE,VALUE): FILE holds VALUE, rewritten only on change (its mtime is a venv
# stamp prerequisite), with make's own file functions: no process, so a no-op install stays fast.
remember = $(if $(filter $(2),$(file <$(1))),,$(shell mkdir -p $(dir $(1)))$(file >$(1),$(2)))
$(call remember,$(ROOT)/.make/locked,$(LOCKED))
$(call remember,$(ROOT)/.make/engines,$(ENGINES))

.PHONY: FORCE
FORCE:

# The interpreter is checked (check_python.py) and its identity rewritten only on change, so
# `PYTHON=...` rebuilds the venvs and nothing else does. Skipped when a parent make just checked
# it (PYTHON_ID_FRESH=1), or PYTHON was not given and the recorded one still exists; never while
# nothing is recorded (an empty recipe would count as remade, rebuilding every venv each run).
ifeq ($(PYTHON_ID_FRESH),1)
$(PYTHON_ID): ;
else ifneq ($(and $(filter file,$(origin PYTHON)),$(wildcard $(PYTHON_RECORDED))),)
$(PYTHON_ID): ;
else
$(PYTHON_ID): FORCE
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: PYTHON=$(PYTHON) was not found. Install Python >= 3.10 or pass PYTHON=/path/to/python3.X" \
	    "(the last one used is remembered in .make/python-id)" >&2; \
	  exit 1; }
	@$(PYTHON) $(ROOT)/scripts/mk/check_python.py $@
endif

# The tools env's lock for the recorded interpreter's minor.
TOOLS_LOCK := $(ROOT)/locks/py3.$(word 2,$(subst ., ,$(lastword $(PYTHON_IDENTITY))))/tools.txt
$(TOOLS_STAMP): $(ROOT)/pyproject.toml $(wildcard $(TOOLS_LOCK)) $(PYTHON_ID) $(ROOT)/.make/locked
	@$(PYTHON) $(ROOT)/scripts/workspace.py $(WORKSPACE_ARGS) install-tools

# `make help`: every target with a `## description` on its rule line, from every makefile read.
define print_help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
endef
