"""The routes of the STS contract: `GET /v1/health` and `POST /v1/process`.

They read what they serve from the application's state, set by `create_app`: the pipeline,
the metrics, the build info and the start time.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared_utils.contract import (
    HEALTH_PATH,
    PROCESS_PATH,
    ErrorCode,
    ErrorResponse,
    HealthResponse,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
)
from sts_service.backends.base import AudioClip, Fragment
from sts_service.errors import QUEUE_FULL_RETRY_AFTER_S, error_response
from sts_service.health import service_status
from sts_service.metrics import StsMetrics
from sts_service.pipeline import Pipeline

__all__ = ["SERVICE_NAME", "router"]

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
        "description": "STS_MAX_RECEIVING bodies arriving, STS_MAX_INFLIGHT in flight, or an "
        "engine's STS_STAGE_CONCURRENCY slots and STS_STAGE_QUEUE places taken.",
    },
    431: {"model": ErrorResponse, "description": "Head over STS_MAX_HEADER_BYTES."},
    500: {"model": ErrorResponse, "description": "A bug in the service."},
}

router = APIRouter()


@router.get(HEALTH_PATH, response_model=HealthResponse, responses={500: _ERROR_RESPONSES[500]})
async def health(request: Request) -> HealthResponse:
    """Service status, the running code's version and revision, and backend health."""
    pipeline: Pipeline = request.app.state.pipeline
    backends = pipeline.health()
    info = request.app.state.build_info
    return HealthResponse(
        status=service_status(pipeline.loading, backends),
        service=SERVICE_NAME,
        version=info.version,
        git_revision=info.git_revision,
        uptime_s=time.monotonic() - request.app.state.started,
        backends=backends,
    )


@router.post(PROCESS_PATH, response_model=ProcessResponse, responses=_ERROR_RESPONSES)
async def process(body: ProcessRequest, request: Request) -> Response:
    """Dub one audio fragment: ASR, then translation, then TTS."""
    t0 = time.perf_counter()
    pipeline: Pipeline = request.app.state.pipeline
    result = await pipeline.run(
        AudioClip.from_payload(body.audio), Fragment.from_request(body), body.timeout_ms / 1000.0
    )
    if result.error is not None and result.error.code is ErrorCode.QUEUE_FULL:
        # Busy is not broken: a full engine queue is answered like a full service, so a
        # client waits Retry-After and asks again instead of counting a failure.
        logger.info("fragment %s of stream %s: %s", body.fragment_id, body.stream_id,
                    result.error.message)  # fmt: skip
        return error_response(
            429,
            ErrorCode.QUEUE_FULL,
            result.error.message,
            stage=result.error.stage,
            headers={"Retry-After": QUEUE_FULL_RETRY_AFTER_S},
        )
    # Built without re-validation: every part is already a validated contract object (the
    # audio payload, ErrorInfo, StageTimings), the pipeline only produces consistent
    # status/field combinations (the contract tests validate every kind of answer), and
    # validating again would decode the audio's base64 once more (~0.2 ms per second of
    # 16 kHz audio on the dev machine).
    response = ProcessResponse.model_construct(
        fragment_id=body.fragment_id,
        stream_id=body.stream_id,
        sequence_number=body.sequence_number,
        status=result.status,
        audio=result.audio.to_payload() if result.audio is not None else None,
        transcript=result.transcript,
        translated_text=result.translated_text,
        processing_time_ms=(time.perf_counter() - t0) * 1000.0,
        stage_timings=result.timings,
        error=result.error,
    )
    metrics: StsMetrics = request.app.state.metrics
    metrics.observe_fragment(
        result.status.value, result.error.code.value if result.error else None, result.timings
    )
    if result.status is not ProcessStatus.SUCCESS:
        logger.warning(
            "fragment %s of stream %s seq %d: %s (%s)",
            body.fragment_id,
            body.stream_id,
            body.sequence_number,
            result.status.value,
            result.error.message if result.error else "",
            extra={"fragment_id": body.fragment_id, "status": result.status.value},
        )
    return Response(response.model_dump_json(), media_type="application/json")
