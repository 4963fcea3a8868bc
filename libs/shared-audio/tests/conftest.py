"""Shared fixtures and helpers for the shared_audio tests."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest


def make_wav_bytes(
    *,
    frames: bytes,
    channels: int = 1,
    sample_rate: int = 16000,
    bits: int = 16,
    format_tag: int = 1,
    data_size: int | None = None,
    riff_size: int | None = None,
    riff: bytes = b"RIFF",
) -> bytes:
    """Build a WAV file by hand, so tests can produce headers the stdlib writer refuses."""
    block_align = channels * ((bits + 7) // 8)
    fmt_chunk = struct.pack(
        "<HHLLHH",
        format_tag,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
    )
    size = len(frames) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<L", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<L", size) + frames
    if riff_size is None:
        riff_size = 4 + len(body) if data_size is None else min(0xFFFFFFFF, 36 + data_size)
    return riff + struct.pack("<L", riff_size) + body


@pytest.fixture
def wav_bytes() -> Callable[..., bytes]:
    return make_wav_bytes


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)
