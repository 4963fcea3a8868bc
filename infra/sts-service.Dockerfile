# sts-service runtime image. Build context: the repo root (see infra/docker-compose.local.yml):
#   docker build -f infra/sts-service.Dockerfile -t live-dubbing/sts-service .
# The local libraries are installed from their paths in the same pip call as the service, so
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
COPY apps/sts-service /app/apps/sts-service
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip install \
      --editable /app/libs/shared-audio \
      --editable /app/libs/shared-utils \
      --editable /app/apps/sts-service \
    && groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app

USER 10001:10001
# Inside a container the service must listen on every interface; publish the port on the
# host's 127.0.0.1 only (compose does). STS_PORT is shared_utils.contract.DEFAULT_STS_PORT.
ENV STS_HOST=0.0.0.0 \
    STS_PORT=8000
EXPOSE 8000
# The real health route (shared_utils.contract.HEALTH_PATH); slim has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['STS_PORT'] + '/v1/health', timeout=2)"]
CMD ["python", "-m", "sts_service"]
