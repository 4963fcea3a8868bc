# The one Makefile fragment shared by every package (apps include it through app.mk). ruff and
# mypy run from the root tools env, mypy reading the package's venv through --python-executable;
# every tool gets the root configuration by name (0003-one-root-tool-config-passed-explicitly).

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

PACKAGE := $(notdir $(CURDIR))
IMPORT_NAME := $(subst -,_,$(PACKAGE))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG := $(ROOT)/pyproject.toml
# What lint and type-check look at: the package, its tests, its benchmarks if any.
SOURCES := $(IMPORT_NAME) tests $(wildcard bench)
COVERAGE_FLOOR := 80
PYTEST := $(BIN)/python -m pytest -c $(CONFIG) --rootdir=$(ROOT)

.DEFAULT_GOAL := help
.PHONY: help install lint format type-check check test test-coverage bench clean

help: ## Show this help
	@echo "$(PACKAGE) ($(IMPORT_NAME)): make <target>"
	$(print_help)

# The recipe `@:` (one silent shell no-op) keeps make from printing "Nothing to be done".
install: $(STAMP) ## Create .venv and install this package [dev] + its local libraries (incremental)
	@:

# Rebuilt when a pyproject or lock it was built from (.installed.d), the interpreter or
# LOCKED/ENGINES change.
$(STAMP): pyproject.toml $(PYTHON_ID) $(ROOT)/.make/locked $(ROOT)/.make/engines | $(TOOLS_STAMP)
	@$(WORKSPACE) install $(CURDIR) $(if $(filter 1,$(ENGINES)),--extra engines)
-include $(VENV)/.installed.d

RUFF := $(TOOLS_VENV)/bin/ruff
MYPY := $(TOOLS_VENV)/bin/mypy --python-executable $(BIN)/python

lint: install ## ruff lint + format check (no changes)
	$(RUFF) check --config $(CONFIG) $(SOURCES)
	$(RUFF) format --check --config $(CONFIG) $(SOURCES)

format: install ## Apply ruff formatting and safe lint fixes
	$(RUFF) format --config $(CONFIG) $(SOURCES)
	$(RUFF) check --fix --config $(CONFIG) $(SOURCES)

type-check: install ## mypy --strict with the root configuration
	$(MYPY) --config-file $(CONFIG) $(SOURCES)

check: lint type-check ## lint + type-check

test: install ## Run the tests; SLOW=1 adds the slow ones
	$(PYTEST) tests $(SLOW_FILTER)

test-coverage: install ## Run the tests with the 80% coverage floor on the import name
	$(PYTEST) tests $(SLOW_FILTER) --cov=$(IMPORT_NAME) --cov-config=$(CONFIG) --cov-branch \
	  --cov-report=term-missing:skip-covered --cov-report=html:htmlcov \
	  --cov-fail-under=$(COVERAGE_FLOOR)

bench: install ## Run every bench/*.py of this package
	@set -e; benches="$(wildcard bench/*.py)"; \
	if [ -z "$$benches" ]; then echo "$(PACKAGE): no benchmarks"; exit 0; fi; \
	for script in $$benches; do echo "== $(PACKAGE): $$script"; $(BIN)/python $$script; done

clean: ## Remove .venv, caches and build outputs of this package
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
