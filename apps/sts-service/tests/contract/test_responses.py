"""Every answer of the service validates against the shared contract models."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from shared_utils.buildinfo import build_info
from shared_utils.contract import (
    CONTRACT_VERSION,
    HEALTH_PATH,
    PROCESS_PATH,
    ErrorCode,
    ErrorResponse,
    HealthResponse,
    HealthStatus,
    ProcessResponse,
    ProcessStatus,
)
from sts_service.backends import EchoASR, EchoTranslator, EchoTTS
from sts_service.backends.base import AudioClip, BackendState, Fragment, TTSBackend
from sts_service.config import StsSettings
from sts_service.pipeline import Pipeline, PipelineResult


class SilentTTS(TTSBackend):
    name = "silent"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(np.zeros_like(source.samples), source.fmt)


class CrashingTTS(TTSBackend):
    name = "crash"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        raise RuntimeError("cuda out of memory")


class UnavailableASR(EchoASR):
    def health(self) -> BackendState:
        return BackendState(False, "weights missing")


class BuggyPipeline(Pipeline):
    async def run(self, audio: AudioClip, fragment: Fragment, timeout_s: float) -> PipelineResult:
        raise KeyError("a bug")


def process_response(response: httpx.Response) -> ProcessResponse:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return ProcessResponse.model_validate_json(response.content)


async def test_health_is_healthy_with_version_revision_backends_and_uptime(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(HEALTH_PATH)
    assert response.status_code == 200
    health = HealthResponse.model_validate_json(response.content)
    info = build_info("sts-service")
    assert health.status is HealthStatus.HEALTHY
    assert health.service == "sts-service"
    assert (health.version, health.git_revision) == (info.version, info.git_revision)
    assert health.contract_version == CONTRACT_VERSION
    assert [(b.stage, b.name, b.available) for b in health.backends] == [
        ("asr", "echo", True),
        ("translation", "echo", True),
        ("tts", "echo", True),
    ]
    await asyncio.sleep(0.02)
    later = HealthResponse.model_validate_json((await client.get(HEALTH_PATH)).content)
    assert later.uptime_s > health.uptime_s >= 0


async def test_health_is_degraded_when_a_backend_is_unavailable(
    make_client: Callable[..., Any],
) -> None:
    pipeline = Pipeline(UnavailableASR(), EchoTranslator(), EchoTTS())
    async with make_client(pipeline=pipeline) as client:
        health = HealthResponse.model_validate_json((await client.get(HEALTH_PATH)).content)
    assert health.status is HealthStatus.DEGRADED
    assert health.backends[0].available is False
    assert health.backends[0].detail == "weights missing"


async def test_health_lists_faulty_backends(make_client: Callable[..., Any]) -> None:
    async with make_client(fault_enabled=True) as client:
        health = HealthResponse.model_validate_json((await client.get(HEALTH_PATH)).content)
    assert [b.name for b in health.backends] == ["faulty(echo)", "echo", "faulty(echo)"]


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2), (8000, 1)])
async def test_success_returns_the_input_audio_and_tagged_text(
    client: httpx.AsyncClient,
    make_body: Callable[..., Any],
    make_pcm: Callable[..., Any],
    rate: int,
    channels: int,
) -> None:
    pcm = make_pcm(rate // 10, channels, rate)
    body = make_body(pcm, rate=rate, channels=channels, sequence_number=12)
    result = process_response(await client.post(PROCESS_PATH, json=body))
    assert result.status is ProcessStatus.SUCCESS
    assert result.error is None
    assert (result.fragment_id, result.stream_id, result.sequence_number) == (
        "frag-1",
        "stream-a",
        12,
    )
    assert result.transcript == "[echo] stream=stream-a seq=12"
    assert result.translated_text == "[es] [echo] stream=stream-a seq=12"
    assert result.audio is not None
    assert (result.audio.sample_rate_hz, result.audio.channels) == (rate, channels)
    assert result.audio.pcm_bytes() == pcm
    assert result.processing_time_ms >= 0
    timings = result.stage_timings
    assert min(timings.asr_ms, timings.translation_ms, timings.tts_ms) >= 0


async def test_a_silent_dub_is_answered_as_made_for_the_client_to_judge(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    pipeline = Pipeline(EchoASR(), EchoTranslator(), SilentTTS())
    async with make_client(pipeline=pipeline) as client:
        result = process_response(await client.post(PROCESS_PATH, json=make_body()))
    assert result.status is ProcessStatus.SUCCESS and result.error is None
    assert result.audio is not None and set(result.audio.pcm_bytes()) == {0}


async def test_backend_exception_is_failed_and_the_server_keeps_serving(
    make_client: Callable[..., Any], make_body: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = Pipeline(EchoASR(), EchoTranslator(), CrashingTTS())
    async with make_client(pipeline=pipeline) as client:
        result = process_response(await client.post(PROCESS_PATH, json=make_body()))
        assert result.status is ProcessStatus.FAILED
        assert result.audio is None
        assert result.error is not None
        assert result.error.code is ErrorCode.MODEL_ERROR and result.error.retryable
        assert "RuntimeError: cuda out of memory" in result.error.message
        pipeline.tts = EchoTTS()
        again = process_response(await client.post(PROCESS_PATH, json=make_body()))
        assert again.status is ProcessStatus.SUCCESS
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


async def test_timeout_ms_is_enforced(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    settings = StsSettings(fault_enabled=True, fault_latency_ms=5000)
    async with make_client(settings) as client:
        response = await client.post(PROCESS_PATH, json=make_body(timeout_ms=1000))
    result = process_response(response)
    assert result.status is ProcessStatus.TIMEOUT
    assert result.audio is None
    assert result.error is not None
    assert result.error.code is ErrorCode.TIMEOUT and result.error.retryable
    assert result.error.stage == "asr"
    assert 1000 <= result.processing_time_ms < 5000


@pytest.mark.parametrize(
    ("code", "retryable"), [(ErrorCode.MODEL_ERROR, True), (ErrorCode.INVALID_AUDIO, False)]
)
async def test_injected_failures_carry_the_configured_code(
    make_client: Callable[..., Any], make_body: Callable[..., Any], code: ErrorCode, retryable: bool
) -> None:
    settings = StsSettings(
        fault_enabled=True, fault_fail_sequences=frozenset({3}), fault_error_code=code
    )
    async with make_client(settings) as client:
        failed = process_response(await client.post(PROCESS_PATH, json=make_body()))
        ok = process_response(await client.post(PROCESS_PATH, json=make_body(sequence_number=4)))
    assert failed.status is ProcessStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable) == (code, retryable)
    assert ok.status is ProcessStatus.SUCCESS


async def test_wrong_length_injection_is_reported_as_success(
    make_client: Callable[..., Any], make_body: Callable[..., Any], make_pcm: Callable[..., Any]
) -> None:
    settings = StsSettings(fault_enabled=True, fault_length_factor=0.5)
    async with make_client(settings) as client:
        result = process_response(await client.post(PROCESS_PATH, json=make_body(make_pcm(1600))))
    assert result.status is ProcessStatus.SUCCESS
    assert result.audio is not None and result.audio.frame_count() == 800


async def test_queue_full_when_too_many_requests_are_in_flight(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    settings = StsSettings(max_inflight=2, fault_enabled=True, fault_latency_ms=300)
    async with make_client(settings) as client:
        responses = await asyncio.gather(
            *(client.post(PROCESS_PATH, json=make_body(sequence_number=n)) for n in range(5))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    for response in responses:
        if response.status_code == 429:
            error = ErrorResponse.model_validate_json(response.content).error
            assert error.code is ErrorCode.QUEUE_FULL and error.retryable
        else:
            assert process_response(response).status is ProcessStatus.SUCCESS


async def test_concurrent_requests_each_get_their_own_answer(
    client: httpx.AsyncClient, make_body: Callable[..., Any], make_pcm: Callable[..., Any]
) -> None:
    pcms = [make_pcm(1600 + n, amplitude=0.1 + n / 100) for n in range(20)]
    responses = await asyncio.gather(
        *(
            client.post(PROCESS_PATH, json=make_body(pcm, sequence_number=n, fragment_id=f"f{n}"))
            for n, pcm in enumerate(pcms)
        )
    )
    for n, response in enumerate(responses):
        result = process_response(response)
        assert result.fragment_id == f"f{n}" and result.sequence_number == n
        assert result.audio is not None
        assert base64.b64decode(result.audio.data_base64) == pcms[n]


async def test_a_bug_is_a_500_that_still_answers_the_contract(
    make_client: Callable[..., Any], make_body: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = BuggyPipeline(EchoASR(), EchoTranslator(), EchoTTS())
    async with make_client(pipeline=pipeline, raise_app_exceptions=False) as client:
        response = await client.post(PROCESS_PATH, json=make_body())
    assert response.status_code == 500
    error = ErrorResponse.model_validate_json(response.content).error
    assert "KeyError" in error.message and "bug" in error.message
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
