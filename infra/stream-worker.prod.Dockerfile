# stream-worker production image: stands alone (no mounted sources), non-root, exact pins.
# Build context: the repo root; `make images` passes the version and git revision:
#   docker build -f infra/stream-worker.prod.Dockerfile -t live-dubbing/stream-worker:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg GIT_REVISION=$(git rev-parse --short HEAD) .
ARG PYTHON_VERSION=3.12

# --- builder: every wheel the worker needs, at the versions of its lock (`make lock`) ----
FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY locks /src/locks
COPY libs/shared-audio /src/libs/shared-audio
COPY libs/shared-utils /src/libs/shared-utils
COPY apps/stream-worker /src/apps/stream-worker
# The local packages are built from their paths, never looked up on an index by name. The
# lock of the image's own Python minor constrains the rest (its dev tools are never asked
# for; no lock for that minor fails the build); its hashes are dropped, as pip's hash mode
# would refuse the local packages, which are folders.
RUN --mount=type=cache,target=/root/.cache/pip \
    minor=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    && grep -o '^[A-Za-z0-9._-]*==[^ ]*' "/src/locks/py$minor/stream-worker.txt" \
      > /src/constraints.txt \
    && python -m pip wheel --wheel-dir /wheels --constraint /src/constraints.txt \
      /src/libs/shared-audio \
      /src/libs/shared-utils \
      /src/apps/stream-worker

# --- runtime: the base image plus the installed wheels, nothing else -----------------------
FROM python:${PYTHON_VERSION}-slim
ARG VERSION=unknown
ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.title="stream-worker" \
      org.opencontainers.image.description="Dubs a live audio stream through sts-service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    GIT_REVISION=${GIT_REVISION} \
    WORKER_LOG_FORMAT=json \
    WORKER_PROGRESS=never
# --no-index --no-deps: exactly the wheels the builder made, nothing from an index; the wheel
# files are bind-mounted, so none is left in a layer, and pip check proves the set complete.
# --no-compile: the bytecode of numpy, pydantic and uvloop would add ~25 MB and take the
# image over its 100 MB budget; the cost is ~1 s more at each start, compiled in memory.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-compile --no-index --no-deps /wheels/*.whl \
    && python -m pip check \
    && groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown 10001:10001 /data

USER 10001:10001
WORKDIR /data
# With WORKER_METRICS_PORT set (live runs, Kubernetes), healthy means the metrics port answers;
# without it the worker serves nothing, and a running process is all there is to check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('WORKER_METRICS_PORT'); port and urllib.request.urlopen('http://127.0.0.1:' + port + '/metrics', timeout=3)"]
ENTRYPOINT ["stream-worker"]
CMD ["--help"]
