# Services (apps/*) are packages that also run: package.mk plus `make dev`.
# A service Makefile may set DEV_ENV (environment) and DEV_ARGS (arguments) before including.

include $(dir $(lastword $(MAKEFILE_LIST)))package.mk

.PHONY: dev
dev: install ## Run the service in the foreground from its .venv (Ctrl-C stops it)
	$(DEV_ENV) $(BIN)/python -m $(IMPORT_NAME) $(DEV_ARGS)
