# sts-service production image: stands alone (no mounted sources), non-root, exact pins.
# Build context: the repo root; `make images` passes the version and git revision:
#   docker build -f infra/sts-service.prod.Dockerfile -t live-dubbing/sts-service:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg GIT_REVISION=$(git rev-parse --short HEAD) .
# EXTRAS=engines builds the variant with the offline speech engines (when the package
# declares that extra), pinned by that extra's lock, locks/py3.X/sts-service.engines.txt.
ARG PYTHON_VERSION=3.12

# --- builder: every wheel the service needs, at the versions of its lock (`make lock`) ----
FROM python:${PYTHON_VERSION}-slim AS builder
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY locks /src/locks
COPY libs/shared-audio /src/libs/shared-audio
COPY libs/shared-utils /src/libs/shared-utils
COPY apps/sts-service /src/apps/sts-service
# The local packages are built from their paths, never looked up on an index by name. The
# lock of the image's own Python minor constrains the rest (its dev tools are never asked
# for; no lock for that minor fails the build); its hashes are dropped, as pip's hash mode
# would refuse the local packages, which are folders.
RUN --mount=type=cache,target=/root/.cache/pip \
    minor=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    && grep -o '^[A-Za-z0-9._-]*==[^ ]*' "/src/locks/py$minor/sts-service${EXTRAS:+.$EXTRAS}.txt" \
      > /src/constraints.txt \
    && python -m pip wheel --wheel-dir /wheels --constraint /src/constraints.txt \
      /src/libs/shared-audio \
      /src/libs/shared-utils \
      "/src/apps/sts-service${EXTRAS:+[${EXTRAS}]}"

# --- runtime: the base image plus the installed wheels, nothing else -----------------------
FROM python:${PYTHON_VERSION}-slim
ARG VERSION=unknown
ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.title="sts-service" \
      org.opencontainers.image.description="Speech -> text -> speech HTTP service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}"
# GIT_REVISION is what /v1/health reports as git_revision (the image has no .git).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    GIT_REVISION=${GIT_REVISION}
# --no-index --no-deps: exactly the wheels the builder made, nothing from an index; the wheel
# files are bind-mounted, so none is left in a layer, and pip check proves the set complete.
# --no-compile: the bytecode of numpy, pydantic and uvloop would add ~25 MB and take the
# image over its 100 MB budget; the cost is ~1 s more at each start, compiled in memory.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-compile --no-index --no-deps /wheels/*.whl \
    && python -m pip check \
    && groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app

USER 10001:10001
WORKDIR /home/app
# Inside a container the service listens on every interface; STS_PORT is
# shared_utils.contract.DEFAULT_STS_PORT. Production logs are JSON, one object a line.
ENV STS_HOST=0.0.0.0 \
    STS_PORT=8000 \
    STS_LOG_FORMAT=json
EXPOSE 8000
# The real health route (shared_utils.contract.HEALTH_PATH); slim has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['STS_PORT'] + '/v1/health', timeout=2)"]
ENTRYPOINT ["sts-service"]
