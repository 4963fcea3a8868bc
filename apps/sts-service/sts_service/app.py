"""The FastAPI application: `GET /v1/health` and `POST /v1/process` of the STS contract."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response

from shared_utils.buildinfo import build_info
from shared_utils.contract import (
    CONTRACT_VERSION,
    HEALTH_PATH,
    PROCESS_PATH,
    ErrorCode,
    ErrorResponse,
    HealthResponse,
    HealthStatus,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
)
from shared_utils.logging import configure_logging
from shared_utils.settings import load_settings
from sts_service.auth import BearerAuthMiddleware
from sts_service.backends import build_pipeline
from sts_service.backends.base import AudioClip, Fragment
from sts_service.config import StsSettings
from sts_service.errors import QUEUE_FULL_RETRY_AFTER_S, error_response, install_error_handlers
from sts_service.metrics import METRICS_PATH, MetricsMiddleware, StsMetrics
from sts_service.middleware import BodyLimitMiddleware, InflightLimitMiddleware
from sts_service.pipeline import LoadState, Pipeline

logger = logging.getLogger(__name__)

#: Distribution name (version lookup) and the service name in health answers and logs.
SERVICE_NAME = "sts-service"

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON."},
    404: {"model": ErrorResponse, "description": "No such route."},
    408: {"model": ErrorResponse, "description": "Body not received in STS_BODY_TIMEOUT_S."},
    413: {"model": ErrorResponse, "description": "Body over STS_MAX_BODY_BYTES."},
    422: {"model": ErrorResponse, "description": "A field is missing or invalid."},
    429: {
        "model": ErrorResponse,
        "description": "STS_MAX_RECEIVING bodies arriving or STS_MAX_INFLIGHT in flight.",
    },
    431: {"model": ErrorResponse, "description": "Head over STS_MAX_HEADER_BYTES."},
    500: {"model": ErrorResponse, "description": "A bug in the service."},
}


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
    started = time.monotonic()

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
    app.state.settings = settings
    app.state.pipeline = active
    install_error_handlers(app)
    # add_middleware wraps the current stack: the last one added runs first. So a body is
    # received whole before the request takes one of the STS_MAX_INFLIGHT processing slots.
    app.add_middleware(InflightLimitMiddleware, path=PROCESS_PATH, limit=settings.max_inflight)
    app.add_middleware(
        BodyLimitMiddleware,
        path=PROCESS_PATH,
        max_bytes=settings.max_body_bytes,
        max_receiving=settings.max_receiving,
        timeout_s=settings.body_timeout_s,
    )
    # Outermost: the token check before anything reads the request, and the metrics see every
    # answer, 401s included. The health route and /metrics stay open for probes and scrapers.
    open_paths = (HEALTH_PATH, METRICS_PATH)
    app.add_middleware(BearerAuthMiddleware, tokens=settings.bearer_tokens(), open_paths=open_paths)
    metrics = StsMetrics(active.health)
    app.state.metrics = metrics
    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        known_paths=(*open_paths, PROCESS_PATH),
        inflight_path=PROCESS_PATH,
    )
    app.add_route(METRICS_PATH, metrics.endpoint, methods=["GET"], include_in_schema=False)

    @app.get(HEALTH_PATH, response_model=HealthResponse, responses={500: _ERROR_RESPONSES[500]})
    async def health() -> HealthResponse:
        """Service status, the running code's version and revision, and backend health."""
        backends = active.health()
        load_state = active.load_state()
        if load_state is LoadState.LOADING:
            status = HealthStatus.LOADING
        elif load_state is LoadState.FAILED or not all(b.available for b in backends):
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.HEALTHY
        return HealthResponse(
            status=status,
            service=SERVICE_NAME,
            version=info.version,
            git_revision=info.git_revision,
            uptime_s=time.monotonic() - started,
            backends=backends,
        )

    @app.post(PROCESS_PATH, response_model=ProcessResponse, responses=_ERROR_RESPONSES)
    async def process(request: ProcessRequest) -> Response:
        """Dub one audio fragment: ASR, then translation, then TTS."""
        t0 = time.perf_counter()
        fragment = Fragment.from_request(request)
        result = await active.run(
            AudioClip.from_payload(request.audio), fragment, request.timeout_ms / 1000.0
        )
        if result.error is not None and result.error.code is ErrorCode.QUEUE_FULL:
            # Busy is not broken: a full engine queue is answered like a full service, so a
            # client waits Retry-After and asks again instead of counting a failure.
            logger.info(
                "fragment %s of stream %s: %s",
                request.fragment_id,
                request.stream_id,
                result.error.message,
            )
            return error_response(
                429,
                ErrorCode.QUEUE_FULL,
                result.error.message,
                stage=result.error.stage,
                headers={"Retry-After": QUEUE_FULL_RETRY_AFTER_S},
            )
        # Built without re-validation: every part is already a validated contract object
        # (the audio payload, ErrorInfo, StageTimings), the pipeline only produces consistent
        # status/field combinations (the contract tests validate every kind of answer), and
        # validating again would decode the audio's base64 once more (~0.2 ms per second of
        # 16 kHz audio on the dev machine).
        response = ProcessResponse.model_construct(
            fragment_id=request.fragment_id,
            stream_id=request.stream_id,
            sequence_number=request.sequence_number,
            status=result.status,
            audio=result.audio.to_payload() if result.audio is not None else None,
            transcript=result.transcript,
            translated_text=result.translated_text,
            processing_time_ms=(time.perf_counter() - t0) * 1000.0,
            stage_timings=result.timings,
            error=result.error,
        )
        metrics.observe_fragment(
            result.status.value, result.error.code.value if result.error else None, result.timings
        )
        if result.status is not ProcessStatus.SUCCESS:
            logger.warning(
                "fragment %s of stream %s seq %d: %s (%s)",
                request.fragment_id,
                request.stream_id,
                request.sequence_number,
                result.status.value,
                result.error.message if result.error else "",
                extra={"fragment_id": request.fragment_id, "status": result.status.value},
            )
        return Response(response.model_dump_json(), media_type="application/json")

    return app


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn's reload mode: settings and logging from the env."""
    settings = load_settings(StsSettings)
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_format)
    return create_app(settings)
