# Repository delivery (hooks, docs, package generator). Included by the root Makefile.

.PHONY: install-hooks docs new-service new-lib

HOOKS_DIR = $(shell git rev-parse --git-path hooks 2>/dev/null)

install-hooks: ## Install the pre-commit hook (.codex/hooks/pre-commit) into this clone's git hooks
	@test -n "$(HOOKS_DIR)" || { echo "error: not a git checkout: run git init or clone first" >&2; exit 1; }
	@mkdir -p "$(HOOKS_DIR)"
	@install -m 0755 .codex/hooks/pre-commit "$(HOOKS_DIR)/pre-commit"
	@echo "installed $(HOOKS_DIR)/pre-commit (bypass once with: git commit --no-verify)"

# -E: an incremental build would hide old warnings. docs/.venv holds Sphinx and every package
# (autodoc imports them), which the tools env does not.
DOCS_SRC ?= docs
DOCS_OUT ?= docs/_build/html
DOCS_VENV := docs/.venv
DOCS_STAMP := $(DOCS_VENV)/.installed

$(DOCS_STAMP): pyproject.toml $(wildcard apps/*/pyproject.toml libs/*/pyproject.toml $(dir $(TOOLS_LOCK))docs.txt) \
  $(PYTHON_ID) $(ROOT)/.make/locked | $(TOOLS_STAMP)
	@$(WORKSPACE) install-docs

docs: $(DOCS_STAMP) ## Build the docs (Sphinx + API pages from docstrings) into docs/_build/html; warnings fail
	$(DOCS_VENV)/bin/sphinx-build -E -W --keep-going -q -b html $(DOCS_SRC) $(DOCS_OUT)
	@echo "docs: OK ($(DOCS_OUT)/index.html)"

NEW_PACKAGE = $(TOOLS_PY) scripts/new_package.py $(1) "$(NAME)" \
  $(if $(DESCRIPTION),--description "$(DESCRIPTION)") $(if $(PORT),--port $(PORT)) \
  $(if $(PYPI_URL),--pypi-url "$(PYPI_URL)")

new-service: $(TOOLS_STAMP) ## Create apps/NAME from the templates: make new-service NAME=foo-bar [DESCRIPTION=...] [PORT=...]
	@test -n "$(NAME)" || { echo "error: give a name: make new-service NAME=foo-bar" >&2; exit 1; }
	@$(call NEW_PACKAGE,service)

new-lib: $(TOOLS_STAMP) ## Create libs/NAME from the templates: make new-lib NAME=foo-bar [DESCRIPTION=...]
	@test -n "$(NAME)" || { echo "error: give a name: make new-lib NAME=foo-bar" >&2; exit 1; }
	@$(call NEW_PACKAGE,lib)
