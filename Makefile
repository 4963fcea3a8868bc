# Root Makefile: runs one target in every member: every package (apps/*/ and libs/*/ that hold
# a pyproject.toml) and scripts/ (the repo's own tooling and tests). Adding a package needs no
# edit here. Adding a loop: one line `name: $(TOOLS_STAMP) ; $(call loop,name,$(MEMBERS))`.

include scripts/mk/common.mk
include scripts/mk/dev.mk
include scripts/mk/repo.mk

PACKAGES := $(patsubst %/pyproject.toml,%,$(sort $(wildcard apps/*/pyproject.toml libs/*/pyproject.toml)))
# SINCE=<git ref>: the loops visit only the members a change since that ref reaches (the
# installer's dependency graph decides; the reasons are printed). Unset: every member.
# The list is asked for in the recipe (as a shell command substitution), not while make reads
# this file: only then does the tools env that answers exist, on a fresh clone too.
ifdef SINCE
MEMBERS = $$($(TOOLS_PY) scripts/workspace.py affected $(SINCE))
else
MEMBERS := $(PACKAGES) scripts
endif

# Set here, after the includes, so that no fragment's first rule becomes the default.
.DEFAULT_GOAL := help
.PHONY: help tools install lint format type-check check test test-all test-coverage bench clean \
        validate-structure affected lock lock-upgrade

help: ## Show this help
	@echo "live-broadcast-dubbing-cloud: make <target>   (packages: $(PACKAGES))"
	@echo "Options: PYTHON=python3.X, VERBOSE=1, SLOW=1, SINCE=<git ref>, LOCKED=0, ENGINES=1."
	$(print_help)

tools: $(TOOLS_STAMP) ## Build only the root tools environment (.venv)

# $(call loop,TARGET,MEMBERS): `make TARGET` in each member, one after the other. A failing
# member never stops the loop; the summary names every failing member and the loop exits 1.
# PYTHON_ID_FRESH=1 tells the member that this make has just checked the interpreter.
define loop
	@members="$(strip $(2))"; failed=""; \
	for member in $$members; do \
	  echo "==> $(1): $$member"; \
	  $(MAKE) -C $$member $(1) PYTHON_ID_FRESH=1 || { failed="$$failed $$member"; echo "==> $(1): FAILED in $$member"; }; \
	done; \
	$(loop_summary)
endef

# $(call parallel_loop,TARGET,MEMBERS): the same, JOBS members at a time (default: every core).
# For members that do not compete for what they measure: installs, whose time is pip unpacking
# wheels, one core per venv. Each member's output is held, then printed as one block, in order.
define parallel_loop
	@members="$(strip $(2))"; failed=""; held=$$(mktemp -d); trap 'rm -rf "$$held"' EXIT; \
	printf '%s\n' $$members | xargs -P "$${JOBS:-$$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}" -I{} \
	  sh -c 'log="$$1/$${2%%/*}-$${2##*/}"; $(MAKE) -C "$$2" $(1) PYTHON_ID_FRESH=1 >"$$log" 2>&1 || touch "$$log.failed"' \
	  sh "$$held" {} || true; \
	for member in $$members; do \
	  log="$$held/$${member%%/*}-$${member##*/}"; \
	  echo "==> $(1): $$member"; cat "$$log"; \
	  if [ -e "$$log.failed" ]; then failed="$$failed $$member"; echo "==> $(1): FAILED in $$member"; fi; \
	done; \
	$(loop_summary)
endef

define loop_summary
if [ -n "$$failed" ]; then echo "$(1): FAILED in:$$failed"; exit 1; fi; \
	set -- $$members; echo "$(1): OK in all $$#: $$members"
endef

install: $(TOOLS_STAMP) ## Build .venv for the tools and every package (incremental, in parallel; PYTHON=...)
	$(call parallel_loop,install,$(PACKAGES))
lint: $(TOOLS_STAMP) ## ruff lint + format check of every package and scripts/
	$(call loop,lint,$(MEMBERS))
format: $(TOOLS_STAMP) ## Apply ruff formatting and safe lint fixes everywhere
	$(call loop,format,$(MEMBERS))
type-check: $(TOOLS_STAMP) ## mypy --strict (one root config) on every package and scripts/
	$(call loop,type-check,$(MEMBERS))
check: lint type-check ## lint + type-check
test: $(TOOLS_STAMP) ## Every package's tests and the fast scaffold tests
	$(call loop,test,$(MEMBERS))
test-all: ## `make test` plus the slow scaffold round trips (CI runs them: SLOW=1)
	@$(MAKE) test SLOW=1
test-coverage: $(TOOLS_STAMP) ## Tests with an 80% coverage floor per package; SLOW=1 adds the slow scaffold tests
	$(call loop,test-coverage,$(MEMBERS))
bench: $(TOOLS_STAMP) ## Run every benchmark: packages' bench/*.py and scripts/bench/*.py
	$(call loop,bench,$(PACKAGES) scripts)
clean: ## Remove every .venv, cache and build output
	$(call loop,clean,$(PACKAGES) scripts)

lock: $(TOOLS_STAMP) ## Pin every venv (extras too) for each Python 3.10-3.13 on this machine: locks/py3.X/*.txt
	@$(TOOLS_PY) scripts/workspace.py lock
lock-upgrade: $(TOOLS_STAMP) ## Move locked versions to the newest allowed (PACKAGE=name: just that one); shows the diff
	@$(TOOLS_PY) scripts/workspace.py lock --upgrade $(PACKAGE)
affected: $(TOOLS_STAMP) ## List the members a change since SINCE=<git ref> reaches, and why
	@test -n "$(SINCE)" || { echo "error: give a git ref: make affected SINCE=origin/main" >&2; exit 1; }
	@members="$(MEMBERS)"; echo $$members

validate-structure: $(TOOLS_STAMP) ## Check the layout against .schemas/monorepo-structure.yaml
	@$(TOOLS_PY) scripts/validate-structure.py --repo .
