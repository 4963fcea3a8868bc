"""The FastAPI application: the STS contract's routes (`sts_service.routes`) behind the limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared_utils.buildinfo import build_info
from shared_utils.contract import CONTRACT_VERSION, HEALTH_PATH, PROCESS_PATH
from shared_utils.logging import configure_logging
from shared_utils.settings import load_settings
from sts_service.auth import BearerAuthMiddleware
from sts_service.backends import build_pipeline
from sts_service.config import StsSettings
from sts_service.errors import install_error_handlers
from sts_service.health import backend_reports
from sts_service.metrics import METRICS_PATH, MetricsMiddleware, StsMetrics
from sts_service.middleware import BodyLimitMiddleware, InflightLimitMiddleware
from sts_service.pipeline import Pipeline
from sts_service.routes import SERVICE_NAME, router

__all__ = ["SERVICE_NAME", "app_factory", "create_app", "pipeline_from_settings"]


def pipeline_from_settings(settings: StsSettings) -> Pipeline:
    """The pipeline the settings select (backends by registry name, optionally `faulty`)."""
    return build_pipeline(
        settings.asr_backend,
        settings.translation_backend,
        settings.tts_backend,
        settings.fault_config(),
        settings.engine_options(),
    )


def create_app(settings: StsSettings, *, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the sts-service ASGI application.

    Args:
        settings: Service settings (backends, limits, fault injection).
        pipeline: Use this pipeline instead of the one `settings` selects (tests, embedding).

    Example:
        >>> app = create_app(StsSettings())
        >>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))
        ['/v1/health', '/v1/process']
    """
    active = pipeline if pipeline is not None else pipeline_from_settings(settings)
    info = build_info(SERVICE_NAME)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Models load in worker threads while the server already answers: /v1/health says
        # "loading", and a fragment gets a retryable error instead of waiting.
        loading = asyncio.create_task(active.load())
        yield
        loading.cancel()
        await asyncio.to_thread(active.close)

    app = FastAPI(
        lifespan=lifespan,
        title=SERVICE_NAME,
        version=info.version,
        summary=f"Speech -> text -> speech (STS contract {CONTRACT_VERSION}).",
        separate_input_output_schemas=False,
    )
    metrics = StsMetrics(lambda: backend_reports(active.loading))
    app.state.settings, app.state.pipeline, app.state.metrics = settings, active, metrics
    app.state.build_info, app.state.started = info, time.monotonic()
    install_error_handlers(app)
    app.include_router(router)
    app.add_route(METRICS_PATH, metrics.endpoint, methods=["GET"], include_in_schema=False)
    _add_middleware(app, settings, metrics)
    return app


def _add_middleware(app: FastAPI, settings: StsSettings, metrics: StsMetrics) -> None:
    # add_middleware wraps the current stack: the last one added runs first. So a body is
    # received whole before the request takes one of the STS_MAX_INFLIGHT processing slots;
    # the token is checked before anything reads the request; and the metrics see every
    # answer, 401s included. The health route and /metrics stay open for probes and scrapers.
    open_paths = (HEALTH_PATH, METRICS_PATH)
    app.add_middleware(InflightLimitMiddleware, path=PROCESS_PATH, limit=settings.max_inflight)
    app.add_middleware(
        BodyLimitMiddleware,
        path=PROCESS_PATH,
        max_bytes=settings.max_body_bytes,
        max_receiving=settings.max_receiving,
        timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(BearerAuthMiddleware, tokens=settings.bearer_tokens(), open_paths=open_paths)
    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        known_paths=(*open_paths, PROCESS_PATH),
        inflight_path=PROCESS_PATH,
    )


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn's reload mode: settings and logging from the env."""
    settings = load_settings(StsSettings)
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_format)
    return create_app(settings)
