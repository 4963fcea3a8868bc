# The dev loop (docs/dev-loop.md): `make dev` in containers, `make dev-local` from the venvs,
# both with the settings of .env.example. Included by the root Makefile.

DEV_COMPOSE_FILE := infra/docker-compose.local.yml
DEV_ENV_FILE := .env.example
# `docker compose` (v2 plugin), else `docker-compose` (v1); expanded only by the recipes below.
DEV_COMPOSE_CMD = $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
  elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
DEV_COMPOSE = $(DEV_COMPOSE_CMD) --env-file $(DEV_ENV_FILE) -f $(DEV_COMPOSE_FILE)

# One line, then a non-zero exit, when no engine or no compose is usable (dev-smoke relies on it).
define dev_require_engine
	@if ! command -v docker >/dev/null 2>&1; then \
	  echo "make $@: Docker is not installed; run the same stack without containers: make dev-local" >&2; exit 1; fi; \
	if ! docker info >/dev/null 2>&1; then \
	  echo "make $@: no Docker engine is reachable (docker info failed); run the same stack without containers: make dev-local" >&2; exit 1; fi; \
	if [ -z "$(DEV_COMPOSE_CMD)" ]; then \
	  echo "make $@: neither 'docker compose' nor 'docker-compose' is installed; run the same stack without containers: make dev-local" >&2; exit 1; fi
endef

.PHONY: dev stop logs dev-local demo dev-smoke images

dev: ## Run sts-service + stream-worker in containers (docker compose); no Docker? make dev-local
	$(dev_require_engine)
	$(DEV_COMPOSE) up --build --detach
	@echo "dev: stack is up (sts-service on 127.0.0.1:$$(sed -n 's/^STS_PORT=//p' $(DEV_ENV_FILE))); follow it with make logs, stop it with make stop"

stop: ## Stop the docker compose dev stack
	$(dev_require_engine)
	$(DEV_COMPOSE) down --remove-orphans

logs: ## Follow the logs of the docker compose dev stack
	$(dev_require_engine)
	$(DEV_COMPOSE) logs --follow

dev-smoke: $(TOOLS_STAMP) ## Up the compose stack, check health, a dubbed pass and reload, tear it all down
	$(dev_require_engine)
	@$(TOOLS_PY) scripts/dev_smoke.py --compose "$(DEV_COMPOSE_CMD)" $(DEV_SMOKE_ARGS)

images: $(TOOLS_STAMP) ## Build the production images (infra/*.prod.Dockerfile), print their sizes
	$(dev_require_engine)
	@$(TOOLS_PY) scripts/images.py $(IMAGES_ARGS)

# Extra arguments of the scripts (see their --help): DEV_LOCAL_ARGS="--workdir /tmp/dev",
# DEMO_ARGS, DEMO_DUB_ARGS, DEV_SMOKE_ARGS, IMAGES_ARGS="--extras engines --service sts-service".

dev-local: $(TOOLS_STAMP) ## The same stack without containers, from the venvs (Ctrl-C stops it)
	@$(TOOLS_PY) scripts/dev_local.py $(DEV_LOCAL_ARGS)

demo: $(TOOLS_STAMP) ## Main job: dub a generated sample through both services, print the summary
	@$(TOOLS_PY) scripts/demo.py $(DEMO_ARGS)

# The real speech engines (apps/sts-service/README.md, "Engines"). The Python part is the
# `engines` extra of sts-service; Apertium (GPL-2) comes from Debian and needs root.
.PHONY: install-engines-system demo-dub

install-engines-system: ## (needs root) apt-get install Apertium with every language pair, and SVOX Pico's voices (Debian non-free)
	@bash scripts/install_engines_system.sh

demo-dub: $(TOOLS_STAMP) ## Dub an English bulletin into Spanish speech with the real engines (needs ENGINES=1 install)
	@$(TOOLS_PY) scripts/demo.py --engines $(DEMO_DUB_ARGS)
