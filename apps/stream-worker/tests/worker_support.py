"""Test helpers: speech-like test audio and an in-process fake sts-service.

They live with the tests, never in the installed package (tests/conftest.py puts this folder
on ``sys.path``; bench/ does the same).

`FakeSts` speaks the shared contract through `httpx.MockTransport`, so the client and the
pipeline can be tested without a server::

    fake = FakeSts(behaviour=lambda req: failed(req, ErrorCode.MODEL_ERROR))
    client = make_client(fake)
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, write_wav
from shared_utils import CircuitBreaker
from shared_utils.contract import (
    HEALTH_PATH,
    PROCESS_PATH,
    ErrorCode,
    ErrorInfo,
    ErrorResponse,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
)
from stream_worker.client import StsClient

#: The default test format: 16 kHz mono S16LE.
FMT = AudioFormat(16000, 1)


def tone(seconds: float, fmt: AudioFormat = FMT, seed: int = 1) -> npt.NDArray[np.int16]:
    """Deterministic speech-level audio (a few sines plus noise), never digital silence."""
    frames = round(seconds * fmt.sample_rate)
    t = np.arange(frames) / fmt.sample_rate
    rng = np.random.default_rng(seed)
    mono = 6000 * np.sin(2 * np.pi * 220 * t) + 3000 * np.sin(2 * np.pi * 347 * t)
    mono = mono + rng.normal(0, 800, frames)
    columns = [np.roll(mono, 17 * ch) for ch in range(fmt.channels)]
    samples: npt.NDArray[np.int16] = np.clip(np.stack(columns, axis=1), -32768, 32767).astype(
        np.int16
    )
    return samples


def write_tone(path: Path, seconds: float, fmt: AudioFormat = FMT) -> npt.NDArray[np.int16]:
    """Write `tone(seconds, fmt)` as a 16-bit WAV file and return the samples."""
    samples = tone(seconds, fmt)
    write_wav(path, samples, fmt)
    return samples


@dataclass
class FakeSts:
    """An in-process sts-service for httpx.MockTransport.

    `behaviour(request) -> httpx.Response | None` decides per request; None means echo.
    """

    behaviour: Callable[[ProcessRequest], Any] | None = None
    latency_s: float = 0.0
    requests: list[ProcessRequest] = field(default_factory=list)
    inflight: int = 0
    max_inflight_seen: int = 0
    health_body: dict[str, Any] | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer one request like sts-service (echo unless `behaviour` says otherwise)."""
        if request.url.path == HEALTH_PATH:
            return httpx.Response(200, json=self.health_body or healthy_body())
        if request.url.path != PROCESS_PATH:
            return httpx.Response(
                404, text=f"the fake serves {PROCESS_PATH}, not {request.url.path}"
            )
        parsed = ProcessRequest.model_validate_json(request.content)
        self.requests.append(parsed)
        self.inflight += 1
        self.max_inflight_seen = max(self.max_inflight_seen, self.inflight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            custom = self.behaviour(parsed) if self.behaviour else None
            if asyncio.iscoroutine(custom):
                custom = await custom
            if isinstance(custom, httpx.Response):
                return custom
            if custom is not None:
                raise TypeError(f"behaviour must return an httpx.Response or None, got {custom!r}")
            return ok(parsed)
        finally:
            self.inflight -= 1

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that routes requests to this fake."""
        return httpx.MockTransport(self.handler)

    def sequences(self) -> list[int]:
        """Sequence numbers of the process requests received, in arrival order."""
        return [r.sequence_number for r in self.requests]


def healthy_body() -> dict[str, Any]:
    """A valid `GET /v1/health` body."""
    return {
        "status": "healthy",
        "service": "sts-service",
        "version": "0.1.0",
        "git_revision": "abc1234",
        "uptime_s": 1.0,
        "backends": [],
    }


def ok(
    request: ProcessRequest, pcm: bytes | None = None, status: ProcessStatus = ProcessStatus.SUCCESS
) -> httpx.Response:
    """A contract answer echoing the request's audio (or `pcm`)."""
    audio = (
        request.audio
        if pcm is None
        else request.audio.model_copy(update={"data_base64": base64.b64encode(pcm).decode()})
    )
    error = (
        ErrorInfo.of(ErrorCode.MODEL_ERROR, "doubtful", "tts")
        if status.value == "partial"
        else None
    )
    body = ProcessResponse(
        fragment_id=request.fragment_id,
        stream_id=request.stream_id,
        sequence_number=request.sequence_number,
        status=status,
        audio=audio,
        transcript="[ECHO]",
        translated_text="[ECHO]",
        processing_time_ms=5.0,
        error=error,
    )
    return httpx.Response(200, content=body.model_dump_json())


def failed(
    request: ProcessRequest, code: ErrorCode, status: ProcessStatus = ProcessStatus.FAILED
) -> httpx.Response:
    """A contract answer with status failed (or timeout) and an error with `code`."""
    body = ProcessResponse(
        fragment_id=request.fragment_id,
        stream_id=request.stream_id,
        sequence_number=request.sequence_number,
        status=status,
        processing_time_ms=1.0,
        error=ErrorInfo.of(code, f"injected {code.value}", "pipeline"),
    )
    return httpx.Response(200, content=body.model_dump_json())


def http_error(status: int, code: ErrorCode) -> httpx.Response:
    """An HTTP error answer with a contract `ErrorResponse` body."""
    body = ErrorResponse(error=ErrorInfo.of(code, f"injected {code.value}", "request"))
    return httpx.Response(status, content=body.model_dump_json())


def make_client(
    fake: FakeSts,
    *,
    timeout_ms: int = 1000,
    breaker: CircuitBreaker | None = None,
    fmt: AudioFormat = FMT,
    clock: Callable[[], float] = time.monotonic,
) -> StsClient:
    """A client of stream "test-stream" talking to `fake` (no network)."""
    return StsClient(
        "http://sts.test",
        fmt,
        source_lang="en",
        target_lang="es",
        timeout_ms=timeout_ms,
        breaker=breaker or CircuitBreaker(failure_threshold=5, reset_timeout_s=30.0),
        stream_id="test-stream",
        transport=fake.transport(),
        clock=clock,
    )


def parse_summary(stderr_text: str) -> dict[str, Any]:
    """The one JSON summary line in a run's stderr.

    Raises:
        AssertionError: if there is not exactly one.
    """
    lines = [line for line in stderr_text.splitlines() if line.startswith('{"event":"summary"')]
    if len(lines) != 1:
        raise AssertionError(
            f"expected one summary line, found {len(lines)}: {stderr_text[-2000:]}"
        )
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def read_summary(path: Path) -> dict[str, Any]:
    """A summary written with --summary-json."""
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


# ------------------------------------------------- synthetic speech with known pauses


class LevelDetector:
    """Speech = a window whose RMS is above about -40 dBFS; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def probability(self, window: npt.NDArray[np.int16]) -> float:
        assert window.ndim == 2 and window.dtype == np.int16  # the stream's window, as it is
        self.calls += 1
        level = window.astype(np.float32) / np.float32(32768)
        return 0.9 if float(np.sqrt(np.mean(level * level))) > 0.01 else 0.05


def ms(value: float, fmt: AudioFormat = FMT) -> int:
    """Frames in `value` milliseconds."""
    return round(value * fmt.sample_rate / 1000)


def speech(plan: list[tuple[str, float]], fmt: AudioFormat = FMT) -> npt.NDArray[np.int16]:
    """('w', ms) is a word (a loud tone), ('p', ms) a pause (silence), ('q', ms) a quiet dip."""
    parts = []
    for kind, length in plan:
        n = ms(length, fmt)
        t = np.arange(n) / fmt.sample_rate
        level = {"w": 8000.0, "p": 0.0, "q": 30.0}[kind]
        parts.append((level * np.sin(2 * np.pi * 220 * t)).astype(np.int16))
    mono = np.concatenate(parts)
    return np.repeat(mono[:, None], fmt.channels, axis=1)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, for a server under test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
