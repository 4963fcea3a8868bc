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
# Read once: "<interpreter path> <version>", e.g. "/usr/bin/python3.11 3.11.7".
PYTHON_IDENTITY := $(file <$(PYTHON_ID))
PYTHON_RECORDED := $(firstword $(PYTHON_IDENTITY))
# An empty PYTHON (say, `PYTHON=` in the environment) counts as not given.
ifeq ($(strip $(PYTHON)),)
PYTHON := $(or $(PYTHON_RECORDED),python3)
endif
TOOLS_VENV := $(ROOT)/.venv
TOOLS_PY := $(TOOLS_VENV)/bin/python
TOOLS_STAMP := $(TOOLS_VENV)/.installed

# LOCKED=0: install without the lock (pip resolves freely within the pyproject ranges, to try
# new releases); not remembered, so the next plain `make install` goes back to the lock.
# ENGINES=1: add each package's `engines` extra (sts-service's speech engines); remembered,
# like PYTHON, until ENGINES=0 is given.
LOCKED ?= 1
ENGINES ?= $(or $(firstword $(file <$(ROOT)/.make/engines)),0)
WORKSPACE_ARGS := --python $(PYTHON) $(if $(VERBOSE),--verbose) $(if $(filter 0,$(LOCKED)),--unlocked)
# From the tools env: on Python 3.10 the installer reads TOML with the tools env's tomli.
WORKSPACE := $(TOOLS_PY) $(ROOT)/scripts/workspace.py $(WORKSPACE_ARGS)

# SLOW=1 (`make test-all`, CI) adds the tests marked `slow`: round trips that take seconds of
# real time each (live streams, restarts, installs in copies of the repo). The everyday
# `make test` skips them.
SLOW ?= 0
SLOW_FILTER := $(if $(filter 1,$(SLOW)),,-m "not slow")

# $(call remember,FILE,VALUE): FILE holds VALUE, rewritten only when it changes (its mtime is a
# make prerequisite of the venv stamps, so a changed option reinstalls and nothing else does).
# Done with make's own file functions while the makefile is read: no process, which keeps a
# no-op `make install` fast.
remember = $(if $(filter $(2),$(file <$(1))),,$(shell mkdir -p $(dir $(1)))$(file >$(1),$(2)))
$(call remember,$(ROOT)/.make/locked,$(LOCKED))
$(call remember,$(ROOT)/.make/engines,$(ENGINES))

.PHONY: FORCE
FORCE:

# The interpreter is checked (scripts/mk/check_python.py) and its identity rewritten only on
# change: the identity's mtime is a prerequisite of every venv stamp, so `PYTHON=...` rebuilds
# the venvs and nothing else does. Skipped, with no process started, when
#   * a parent make (the root loop) checked it moments ago: PYTHON_ID_FRESH=1;
#   * PYTHON was not given and the recorded interpreter still exists: venvs link to that same
#     binary, so there is nothing to rebuild (pass PYTHON= to force the check).
# Never skipped while nothing is recorded (a fresh clone, however the interpreter is named): a
# missing identity with an empty recipe would count as remade on every run, and rebuild every
# venv each time.
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
