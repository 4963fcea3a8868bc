from __future__ import annotations

import pytest

from shared_audio import (
    SUPPORTED_CHANNELS,
    SUPPORTED_SAMPLE_RATES,
    AudioFormat,
    AudioFormatError,
    SampleEncoding,
)


def test_defaults_to_s16le_and_computes_frame_bytes() -> None:
    fmt = AudioFormat(48000, 2)
    assert fmt.encoding is SampleEncoding.S16LE
    assert fmt.frame_bytes == 4
    assert AudioFormat(16000, 1, SampleEncoding.F32LE).frame_bytes == 4
    assert AudioFormat(16000, 2, SampleEncoding.F32LE).frame_bytes == 8


def test_encoding_accepts_plain_value() -> None:
    assert AudioFormat(16000, 1, "f32le").encoding is SampleEncoding.F32LE  # type: ignore[arg-type]  # str on purpose


def test_frames_for_ms_and_duration() -> None:
    fmt = AudioFormat(44100, 1)
    assert fmt.frames_for_ms(1000) == 44100
    assert fmt.frames_for_ms(10) == 441
    assert fmt.frames_for_ms(1) == 44  # rounded down
    assert fmt.duration_s(22050) == 0.5


@pytest.mark.parametrize("rate", sorted(SUPPORTED_SAMPLE_RATES))
def test_every_supported_rate_is_accepted(rate: int) -> None:
    assert AudioFormat(rate, 1).sample_rate == rate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 12345, "channels": 1}, "12345 Hz is not supported"),
        ({"sample_rate": 16000.0, "channels": 1}, "sample_rate must be an int"),
        ({"sample_rate": True, "channels": 1}, "sample_rate must be an int"),
        ({"sample_rate": 16000, "channels": 3}, "channels 3 is not supported"),
        ({"sample_rate": 16000, "channels": "2"}, "channels must be an int"),
        ({"sample_rate": 16000, "channels": 1, "encoding": "mp3"}, "encoding 'mp3'"),
    ],
)
def test_invalid_formats_raise_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        AudioFormat(**kwargs)  # type: ignore[arg-type]  # invalid on purpose


def test_format_is_frozen_and_hashable() -> None:
    fmt = AudioFormat(16000, 1)
    with pytest.raises(AttributeError):
        fmt.channels = 2  # type: ignore[misc]  # frozen on purpose
    assert {fmt, AudioFormat(16000, 1)} == {fmt}
    assert SUPPORTED_CHANNELS == frozenset({1, 2})
