"""Shared fixtures: audio, request bodies and an in-process client of the app."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest

from sts_service.app import create_app
from sts_service.config import StsSettings
from sts_service.pipeline import Pipeline

MakePcm = Callable[..., bytes]
MakeBody = Callable[..., dict[str, Any]]
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """`free_port()`: a loopback TCP port that was free a moment ago, for a server under test."""

    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    return pick


@pytest.fixture(autouse=True)
def _clean_sts_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the defaults, whatever STS_* variables the calling shell exports."""
    for name in list(os.environ):
        if name.upper().startswith("STS_"):
            monkeypatch.delenv(name)


def tone(
    frames: int = 16000, channels: int = 1, rate: int = 16000, amplitude: float = 0.3
) -> bytes:
    t = np.arange(frames) / rate
    wave = amplitude * 32767 * np.sin(2 * np.pi * 220.0 * t)
    samples = np.repeat(wave[:, None], channels, axis=1).astype("<i2")
    return samples.tobytes()


@pytest.fixture
def make_pcm() -> MakePcm:
    """`make_pcm(frames=16000, channels=1, rate=16000, amplitude=0.3)`: a 220 Hz tone as S16LE."""
    return tone


@pytest.fixture
def make_body() -> MakeBody:
    """`make_body(pcm=None, rate=16000, channels=1, **top_level_overrides)`: a request dict."""

    def build(
        pcm: bytes | None = None, rate: int = 16000, channels: int = 1, **overrides: object
    ) -> dict[str, Any]:
        data = tone(1600, channels, rate) if pcm is None else pcm
        body: dict[str, Any] = {
            "fragment_id": "frag-1",
            "stream_id": "stream-a",
            "sequence_number": 3,
            "audio": {
                "encoding": "pcm_s16le",
                "sample_rate_hz": rate,
                "channels": channels,
                "data_base64": base64.b64encode(data).decode(),
            },
            "config": {"source_language": "en", "target_language": "es"},
            "timeout_ms": 8000,
        }
        body.update(overrides)
        return body

    return build


@pytest.fixture
def make_client() -> MakeClient:
    """`async with make_client(settings=None, pipeline=None, **settings_kw) as client`."""

    @asynccontextmanager
    async def open_client(
        settings: StsSettings | None = None,
        pipeline: Pipeline | None = None,
        raise_app_exceptions: bool = True,
        **settings_kw: object,
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings or StsSettings.model_validate(settings_kw), pipeline=pipeline)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://sts.test") as client:
            yield client

    return open_client


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with default settings (echo pipeline)."""
    async with make_client() as opened:
        yield opened
