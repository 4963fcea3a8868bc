# stream-worker runtime image. Build context: the repo root (see infra/docker-compose.local.yml):
#   docker build -f infra/stream-worker.Dockerfile -t live-dubbing/stream-worker .
# The local libraries are installed from their paths in the same pip call as the worker, so
# pip never looks them up by name on an index. Editable installs point at /app/..., which the
# compose dev loop bind-mounts with the live source. No dev extras.
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app
COPY libs/shared-audio /app/libs/shared-audio
COPY libs/shared-utils /app/libs/shared-utils
COPY apps/stream-worker /app/apps/stream-worker
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip install \
      --editable /app/libs/shared-audio \
      --editable /app/libs/shared-utils \
      --editable /app/apps/stream-worker \
    && groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown 10001:10001 /data

USER 10001:10001
WORKDIR /data
# stream-worker is a client: it serves no route, so there is nothing to probe. Its liveness
# is its exit status (compose restarts it); sts-service's health is checked in its image.
HEALTHCHECK NONE
ENTRYPOINT ["stream-worker"]
CMD ["--help"]
