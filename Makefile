# Root Makefile: loops over every package (apps/*/ and libs/*/ that hold a pyproject.toml) and
# over the repo's own scripts. Adding a package needs no edit here.
#
# A loop never lies (errata 11): every package runs even when an earlier one fails, the
# summary names each failing package, and the loop's exit status is non-zero if any failed.
# `make -j4 <loop>` runs packages in parallel and prints each package's whole output (header,
# sub-make, verdict) as one block, so parallel output is never interleaved; a serial run
# streams the output as it happens.

include scripts/mk/common.mk
include scripts/mk/dev.mk
include scripts/mk/repo.mk

PACKAGES := $(patsubst %/pyproject.toml,%,$(sort $(wildcard apps/*/pyproject.toml libs/*/pyproject.toml)))
STATUS := .make/status
PACKAGE_LOOPS := install lint format type-check test test-coverage bench clean

# Set here, after the includes, so that no fragment's first rule becomes the default.
.DEFAULT_GOAL := help
.PHONY: help tools install lint format type-check check test test-coverage bench clean \
        validate-structure $(addsuffix -all,$(PACKAGE_LOOPS))

help: ## Show this help
	@echo "live-broadcast-dubbing-cloud: make <target>   (packages: $(PACKAGES))"
	@echo "Per package: cd <package> && make help. Options: PYTHON=python3.X, VERBOSE=1, -j4."
	$(print_help)

tools: $(TOOLS_STAMP) ## Build only the root tools environment (.venv)

# ---------------------------------------------------------------------------------------------
# The loops. For loop L and member M, target L/M runs `make L` in M and records the result;
# target L then reports. Members: every package, and scripts/ (all loops but install).
# ---------------------------------------------------------------------------------------------

define member_rule
$(1)/%:
	@mkdir -p $(STATUS)/$(1)
	@echo "==> $(1): $$*"
	@if $$(MAKE) -C $$* $(1) $$(if $$(filter-out clean,$(1)),PYTHON_ID_FRESH=1); then rm -f $(STATUS)/$(1)/$$(subst /,__,$$*); \
	else touch $(STATUS)/$(1)/$$(subst /,__,$$*); echo "==> $(1): FAILED in $$*"; fi
endef

# $(call loop_rule,LOOP,MEMBERS): the aggregate target of one loop. LOOP re-enters this
# Makefile for LOOP-all; under -j (visible in MAKEFLAGS only inside recipes) it adds
# --output-sync=recurse, which groups each member's output and would hold back a serial run's.
define loop_rule
$(1):
	@$$(MAKE) $$(if $$(filter -j%,$$(MAKEFLAGS)),--output-sync=recurse) $(1)-all
$(1)-all: $(addprefix $(1)/,$(2))
	@failed=""; for member in $(2); do \
	  if [ -e $(STATUS)/$(1)/$$$${member//\//__} ]; then failed="$$$$failed $$$$member"; fi; done; \
	if [ -n "$$$$failed" ]; then echo "$(1): FAILED in:$$$$failed"; exit 1; fi; \
	echo "$(1): OK in all $(words $(2)): $(2)"
endef

$(foreach loop,$(PACKAGE_LOOPS),$(eval $(call member_rule,$(loop))))

# Every loop but clean needs the tools environment first (it provides pip and the installer),
# and checks the interpreter once for all packages.
$(foreach loop,$(filter-out clean,$(PACKAGE_LOOPS)),$(addprefix $(loop)/,$(PACKAGES) scripts)): $(TOOLS_STAMP)

# scripts/ is a member of every loop but install: its Makefile runs the repo's own scripts
# and the scaffold tests from the tools env.

$(eval $(call loop_rule,install,$(PACKAGES)))
install: ## Build .venv for the tools and every package (incremental; PYTHON=... to choose)
$(eval $(call loop_rule,lint,$(PACKAGES) scripts))
lint: ## ruff lint + format check of every package and scripts/
$(eval $(call loop_rule,format,$(PACKAGES) scripts))
format: ## Apply ruff formatting and safe lint fixes everywhere
$(eval $(call loop_rule,type-check,$(PACKAGES) scripts))
type-check: ## mypy --strict (one root config) on every package and scripts/
check: lint type-check ## lint + type-check
$(eval $(call loop_rule,test,$(PACKAGES) scripts))
test: ## Run every package's tests and the scaffold's own tests
$(eval $(call loop_rule,test-coverage,$(PACKAGES) scripts))
test-coverage: ## Tests with an 80% coverage floor per package (on its import name)
$(eval $(call loop_rule,bench,$(PACKAGES) scripts))
bench: ## Run every benchmark: packages' bench/*.py and scripts/bench/*.py
$(eval $(call loop_rule,clean,$(PACKAGES) scripts))
clean: ## Remove every .venv, cache and build output

validate-structure: $(TOOLS_STAMP) ## Check the layout against .schemas/monorepo-structure.yaml
	@$(TOOLS_PY) scripts/validate-structure.py --repo .
