"""The requests the worker builds satisfy the shared contract; every answer is handled."""

from __future__ import annotations

import asyncio
import base64

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from worker_support import FMT, FakeSts, failed, http_error, make_client, ok, tone

from shared_utils import CircuitBreaker, CircuitState
from shared_utils.contract import (
    MIN_TIMEOUT_MS,
    ErrorCode,
    ProcessRequest,
    ProcessStatus,
)
from stream_worker.client import StsUnavailableError
from stream_worker.outcome import DubResult, FallbackReason
from stream_worker.policy import dub

AUDIO = tone(1.0)


def state_of(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state


async def dub_once(
    fake: FakeSts,
    samples: npt.NDArray[np.int16] = AUDIO,
    timeout_ms: int = 1000,
    breaker: CircuitBreaker | None = None,
) -> DubResult:
    async with make_client(fake, timeout_ms=timeout_ms, breaker=breaker) as client:
        return await dub(client, 7, samples, FMT)


async def test_requests_validate_against_the_contract(fake_sts: FakeSts) -> None:
    result = await dub_once(fake_sts)
    assert result.reason is None
    [request] = fake_sts.requests
    # FakeSts parsed it with ProcessRequest (extra="forbid"); check the content too.
    again = ProcessRequest.model_validate_json(request.model_dump_json())
    assert again.sequence_number == 7
    assert again.stream_id == "test-stream"
    assert again.fragment_id == "test-stream-7"
    assert again.timeout_ms == 1000
    assert again.config.source_language == "en" and again.config.target_language == "es"
    assert again.audio.audio_format() == FMT
    assert again.audio.pcm_bytes() == AUDIO.tobytes()


async def test_every_fragment_id_is_unique_per_segment(fake_sts: FakeSts) -> None:
    async with make_client(fake_sts) as client:
        for seq in range(5):
            await dub(client, seq, AUDIO[:1600], FMT)
    ids = [r.fragment_id for r in fake_sts.requests]
    assert len(set(ids)) == 5


async def test_success_gives_the_dubbed_audio(fake_sts: FakeSts) -> None:
    result = await dub_once(fake_sts)
    assert result.reason is None and not result.fitted
    assert result.audio is not None and np.array_equal(result.audio, AUDIO)
    assert result.processing_ms == 5.0 and result.round_trip_ms is not None


@pytest.mark.parametrize(("factor", "expected_tail"), [(0.5, "zeros"), (1.5, "trimmed")])
async def test_wrong_length_audio_is_fitted(factor: float, expected_tail: str) -> None:
    def behaviour(req: ProcessRequest) -> httpx.Response:
        pcm = np.resize(AUDIO, (int(AUDIO.shape[0] * factor), 1)).astype(np.int16)
        return ok(req, pcm.tobytes())

    result = await dub_once(FakeSts(behaviour=behaviour))
    assert result.reason is None and result.fitted
    assert result.audio is not None and result.audio.shape == AUDIO.shape
    if expected_tail == "zeros":
        assert np.array_equal(result.audio[:8000], AUDIO[:8000])
        assert not result.audio[8000:].any()
    else:
        assert np.array_equal(result.audio, AUDIO)


async def test_partial_is_a_counted_fallback() -> None:
    fake = FakeSts(behaviour=lambda req: ok(req, status=ProcessStatus.PARTIAL))
    result = await dub_once(fake)
    assert result.audio is None and result.reason is FallbackReason.PARTIAL
    assert len(fake.requests) == 1  # not retried


@pytest.mark.parametrize(
    ("code", "attempts"),
    [(ErrorCode.MODEL_ERROR, 2), (ErrorCode.QUEUE_FULL, 2), (ErrorCode.INVALID_AUDIO, 1)],
)
async def test_failed_is_retried_once_only_when_retryable(code: ErrorCode, attempts: int) -> None:
    fake = FakeSts(behaviour=lambda req: failed(req, code))
    result = await dub_once(fake)
    assert result.reason is FallbackReason.STS_ERROR
    assert code.value in result.detail
    assert len(fake.requests) == attempts
    assert result.retries == attempts - 1


async def test_retry_that_succeeds_gives_dubbed_audio() -> None:
    calls = 0

    def behaviour(req: ProcessRequest) -> httpx.Response | None:
        nonlocal calls
        calls += 1
        return failed(req, ErrorCode.MODEL_ERROR) if calls == 1 else None

    fake = FakeSts(behaviour=behaviour)
    result = await dub_once(fake, timeout_ms=3000)
    assert result.reason is None and result.retries == 1
    first, second = fake.requests
    assert second.timeout_ms >= MIN_TIMEOUT_MS and second.timeout_ms <= first.timeout_ms


def busy(retry_after: str | None = "0") -> httpx.Response:
    response = http_error(429, ErrorCode.QUEUE_FULL)
    if retry_after is not None:
        response.headers["retry-after"] = retry_after
    return response


async def test_busy_service_is_asked_again_after_retry_after_without_a_breaker_failure() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30)
    answers = iter([busy("0.2"), busy("0.2"), busy(None), None])
    fake = FakeSts(behaviour=lambda req: next(answers))
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await dub_once(fake, timeout_ms=3000, breaker=breaker)
    assert result.reason is None and result.audio is not None
    assert len(fake.requests) == 4  # more than the one retry errors get
    assert loop.time() - start >= 0.2 + 0.2 + 0.5  # Retry-After honoured (0.5 s when absent)
    assert state_of(breaker) is CircuitState.CLOSED


async def test_busy_until_the_deadline_falls_back_as_busy_and_keeps_the_breaker_closed() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30)
    fake = FakeSts(behaviour=lambda req: busy("0.3"))
    async with make_client(fake, timeout_ms=1000, breaker=breaker) as client:
        for seq in range(3):
            result = await dub(client, seq, AUDIO, FMT)
            assert result.reason is FallbackReason.BUSY
            assert "QUEUE_FULL" in result.detail and "deadline" in result.detail
    assert state_of(breaker) is CircuitState.CLOSED
    assert 6 <= len(fake.requests) <= 12  # every segment asked again within its 1 s


async def test_a_deadline_passing_on_the_try_after_a_busy_answer_is_still_busy() -> None:
    # The busy wait took the time the next try needed: busy, not a broken service.
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30)

    async def busy_then_stuck(req: ProcessRequest) -> httpx.Response:
        if len(fake.requests) == 1:
            return busy("0.1")
        await asyncio.sleep(5)
        return busy("0")

    fake = FakeSts(behaviour=busy_then_stuck)
    result = await dub_once(fake, timeout_ms=500, breaker=breaker)
    assert result.reason is FallbackReason.BUSY
    assert "QUEUE_FULL" in result.detail and "deadline" in result.detail
    assert len(fake.requests) == 2
    assert state_of(breaker) is CircuitState.CLOSED


async def test_a_slow_service_missing_live_slots_times_out_without_opening_the_breaker() -> None:
    # Live, the slot is the deadline: a service slower than the slot is late, not broken.
    # Each segment falls back as `timeout` at its slot; none as `circuit_open`.
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30)
    fake = FakeSts(latency_s=0.5)
    loop = asyncio.get_running_loop()
    async with make_client(fake, timeout_ms=4000, breaker=breaker) as client:
        for seq in range(4):
            result = await dub(client, seq, AUDIO, FMT, deadline=loop.time() + 0.1)
            assert result.reason is FallbackReason.TIMEOUT
    assert state_of(breaker) is CircuitState.CLOSED
    # The same when the service itself answers status=timeout (its budget was the slot's).
    late = FakeSts(behaviour=lambda req: failed(req, ErrorCode.TIMEOUT, ProcessStatus.TIMEOUT))
    async with make_client(late, timeout_ms=4000, breaker=breaker) as client:
        for seq in range(4):
            result = await dub(client, seq, AUDIO, FMT, deadline=loop.time() + 0.5)
            assert result.reason is FallbackReason.TIMEOUT
    assert state_of(breaker) is CircuitState.CLOSED
    # Its own timeout (no slot came first) still counts: a service that never answers opens it.
    async with make_client(FakeSts(latency_s=2.0), timeout_ms=1000, breaker=breaker) as client:
        for seq in range(2):
            result = await dub(client, seq, AUDIO, FMT)
            assert result.reason is FallbackReason.TIMEOUT
    assert state_of(breaker) is CircuitState.OPEN


async def test_retry_after_beyond_the_deadline_falls_back_at_once() -> None:
    fake = FakeSts(behaviour=lambda req: busy("30"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await dub_once(fake, timeout_ms=5000)
    assert result.reason is FallbackReason.BUSY
    assert len(fake.requests) == 1
    assert loop.time() - start < 1.0  # no point waiting for a deadline that cannot be met


async def test_status_timeout_is_a_timeout_fallback() -> None:
    fake = FakeSts(behaviour=lambda req: failed(req, ErrorCode.TIMEOUT, ProcessStatus.TIMEOUT))
    result = await dub_once(fake)
    assert result.reason is FallbackReason.TIMEOUT


@pytest.mark.parametrize(
    ("status", "code", "reason", "attempts"),
    [
        (400, ErrorCode.INVALID_REQUEST, FallbackReason.REJECTED, 1),
        (413, ErrorCode.FRAGMENT_TOO_LARGE, FallbackReason.REJECTED, 1),
        (422, ErrorCode.INVALID_AUDIO, FallbackReason.REJECTED, 1),
        (503, ErrorCode.MODEL_ERROR, FallbackReason.STS_ERROR, 2),
    ],
)
async def test_http_errors(
    status: int, code: ErrorCode, reason: FallbackReason, attempts: int
) -> None:
    fake = FakeSts(behaviour=lambda req: http_error(status, code))
    result = await dub_once(fake)
    assert result.reason is reason
    assert f"HTTP {status}" in result.detail
    assert len(fake.requests) == attempts


@pytest.mark.parametrize(
    ("response", "attempts"),
    [
        (httpx.Response(500, text="Internal Server Error"), 2),
        (httpx.Response(404, text="not found"), 1),
    ],
)
async def test_errors_without_a_contract_body(response: httpx.Response, attempts: int) -> None:
    fake = FakeSts(behaviour=lambda req: response)
    result = await dub_once(fake)
    assert result.reason in (FallbackReason.STS_ERROR, FallbackReason.REJECTED)
    assert len(fake.requests) == attempts


async def test_connection_errors_are_unreachable_and_retried_once() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    async with make_client(FakeSts()) as client:
        client._http._transport = httpx.MockTransport(handler)
        result = await dub(client, 0, AUDIO, FMT)
    assert result.reason is FallbackReason.UNREACHABLE
    assert calls == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"fragment_id": "x"}',
    ],
)
async def test_answers_that_break_the_contract_fall_back(body: bytes) -> None:
    fake = FakeSts(behaviour=lambda req: httpx.Response(200, content=body))
    result = await dub_once(fake)
    assert result.reason is FallbackReason.STS_ERROR
    assert "breaks the contract" in result.detail
    assert len(fake.requests) == 1


async def test_answer_for_another_fragment_falls_back() -> None:
    def behaviour(req: ProcessRequest) -> httpx.Response:
        return ok(req.model_copy(update={"fragment_id": "other-1", "sequence_number": 1}))

    result = await dub_once(FakeSts(behaviour=behaviour))
    assert result.reason is FallbackReason.STS_ERROR and "other-1" in result.detail


async def test_answer_in_another_format_falls_back() -> None:
    def behaviour(req: ProcessRequest) -> httpx.Response:
        audio = req.audio.model_copy(update={"sample_rate_hz": 48000})
        return ok(req.model_copy(update={"audio": audio}))

    result = await dub_once(FakeSts(behaviour=behaviour))
    assert result.reason is FallbackReason.STS_ERROR and "48000 Hz" in result.detail


async def test_success_with_empty_audio_is_not_silence_in_the_output() -> None:
    result = await dub_once(FakeSts(behaviour=lambda req: ok(req, b"")))
    assert result.reason is FallbackReason.STS_ERROR and "empty audio" in result.detail


async def test_success_with_silence_for_speech_is_refused() -> None:
    # a speech engine can report success without ever attaching the audio bytes
    silence = np.zeros_like(AUDIO).tobytes()
    result = await dub_once(FakeSts(behaviour=lambda req: ok(req, silence)))
    assert result.reason is FallbackReason.SILENT_DUB


async def test_silence_in_gives_silence_out() -> None:
    silence = np.zeros((16000, 1), dtype=np.int16)
    result = await dub_once(FakeSts(), silence)
    assert result.reason is None
    assert result.audio is not None and not result.audio.any()


async def test_a_hanging_service_hits_the_per_request_deadline() -> None:
    fake = FakeSts(latency_s=3.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await dub_once(fake, timeout_ms=1000)
    assert result.reason is FallbackReason.TIMEOUT
    assert loop.time() - start < 2.0


async def test_breaker_state_changes_as_the_client_uses_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10, clock=lambda: now[0])
    healthy = True
    fake = FakeSts(behaviour=lambda req: None if healthy else failed(req, ErrorCode.MODEL_ERROR))
    async with make_client(fake, breaker=breaker) as client:
        healthy = False
        assert (await dub(client, 0, AUDIO, FMT)).reason is FallbackReason.STS_ERROR
        assert state_of(breaker) is CircuitState.CLOSED
        assert (await dub(client, 1, AUDIO, FMT)).reason is FallbackReason.STS_ERROR
        assert state_of(breaker) is CircuitState.OPEN
        sent = len(fake.requests)
        result = await dub(client, 2, AUDIO, FMT)
        assert result.reason is FallbackReason.CIRCUIT_OPEN
        assert len(fake.requests) == sent  # the service was not called
        now[0] = 11.0  # reset timeout passed: one probe, which fails -> open again
        assert (await dub(client, 3, AUDIO, FMT)).reason is FallbackReason.STS_ERROR
        assert state_of(breaker) is CircuitState.OPEN
        now[0] = 22.0
        healthy = True  # probe succeeds -> closed
        assert (await dub(client, 4, AUDIO, FMT)).reason is None
        assert state_of(breaker) is CircuitState.CLOSED


async def test_non_retryable_rejection_does_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10)
    fake = FakeSts(behaviour=lambda req: http_error(422, ErrorCode.INVALID_AUDIO))
    async with make_client(fake, breaker=breaker) as client:
        for seq in range(3):
            assert (await dub(client, seq, AUDIO, FMT)).reason is FallbackReason.REJECTED
    assert state_of(breaker) is CircuitState.CLOSED


async def test_health_is_validated() -> None:
    async with make_client(FakeSts()) as client:
        health = await client.health()
    assert health.git_revision == "abc1234"
    bad = FakeSts(health_body={"status": "fine"})
    async with make_client(bad) as client:
        with pytest.raises(StsUnavailableError, match="did not answer like sts-service"):
            await client.health()


async def test_health_http_error_and_unreachable() -> None:
    async with make_client(FakeSts()) as client:
        client._http._transport = httpx.MockTransport(lambda r: httpx.Response(503))
        with pytest.raises(StsUnavailableError, match="HTTP 503"):
            await client.health()

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        client._http._transport = httpx.MockTransport(refuse)
        with pytest.raises(StsUnavailableError, match="not reachable"):
            await client.health()


def test_payload_is_standard_base64_of_s16le() -> None:
    async def go() -> str:
        async with make_client(FakeSts()) as client:
            return client.build_request(0, AUDIO[:4]).audio.data_base64

    data = asyncio.run(go())
    assert base64.b64decode(data) == AUDIO[:4].astype("<i2").tobytes()


@pytest.mark.parametrize(("version", "sends"), [("1.0", False), ("1.1", True), ("2.0", True)])
async def test_previous_text_is_sent_only_when_the_health_check_says_the_service_reads_it(
    version: str, sends: bool
) -> None:
    from worker_support import healthy_body

    from stream_worker.main import _check_sts

    fake = FakeSts(health_body={**healthy_body(), "contract_version": version})
    client = make_client(fake)
    async with client:
        await _check_sts(client, require=True)
        assert client.send_previous_text is sends
        await client.send(0, tone(0.5), previous_text="Good evening.")
    # The last request is the segment's: with require=True, the check also sends a probe.
    assert fake.requests[-1].previous_text == ("Good evening." if sends else None)
