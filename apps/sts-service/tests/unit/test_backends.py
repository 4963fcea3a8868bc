from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from shared_audio import AudioFormat
from shared_utils.contract import ErrorCode, ProcessStatus
from sts_service.backends import (
    ASR_BACKENDS,
    TRANSLATION_BACKENDS,
    TTS_BACKENDS,
    BackendRegistry,
    EchoASR,
    EchoTranslator,
    EchoTTS,
    FaultyASR,
    FaultyTTS,
    build_pipeline,
    faulty,
)
from sts_service.backends.base import ASRBackend, AudioClip, BackendError, BackendState, Fragment
from sts_service.backends.fault_injection import FaultSettings

FMT = AudioFormat(16000, 1)


def clip(frames: int = 1600) -> AudioClip:
    wave = (9000 * np.sin(np.arange(frames) / 5)).astype(np.int16)
    return AudioClip(wave[:, None], FMT)


def fragment(seq: int = 7, stream: str = "s1", target: str = "de") -> Fragment:
    return Fragment("f", stream, seq, "en", target)


async def test_echo_asr_is_deterministic() -> None:
    asr = EchoASR()
    assert await asr.transcribe(clip(), fragment(7)) == "[echo] stream=s1 seq=7"
    assert await asr.transcribe(clip(10), fragment(7)) == "[echo] stream=s1 seq=7"


async def test_echo_translator_tags_target_language() -> None:
    assert await EchoTranslator().translate("hi", fragment(target="pt-BR")) == "[pt-BR] hi"


async def test_echo_tts_returns_input_unchanged() -> None:
    source = clip(1234)
    dubbed = await EchoTTS().synthesize("x", source, fragment())
    assert dubbed.fmt == source.fmt
    assert dubbed.frame_count == 1234
    np.testing.assert_array_equal(dubbed.samples, source.samples)


def test_echo_backends_are_available() -> None:
    assert EchoASR().health() == BackendState(True, None)


def test_registries_create_backends_by_name() -> None:
    assert isinstance(ASR_BACKENDS.create("echo"), EchoASR)
    assert isinstance(TRANSLATION_BACKENDS.create("echo"), EchoTranslator)
    assert isinstance(TTS_BACKENDS.create("echo"), EchoTTS)
    assert "echo" in ASR_BACKENDS and "nope" not in ASR_BACKENDS
    assert list(TTS_BACKENDS) == ["echo", "espeak", "pico"]  # registered even when not installed


def test_unknown_backend_names_the_stage_and_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown tts backend 'whisper'; registered: echo, espeak"
    ):
        TTS_BACKENDS.create("whisper")


def test_a_new_backend_is_one_class_and_one_line() -> None:
    class ShoutingASR(EchoASR):
        async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
            return "HELLO"

    registry: BackendRegistry[ASRBackend] = BackendRegistry("asr", {"echo": EchoASR})
    registry.register("shout", ShoutingASR)
    backend = registry.create("shout")
    assert isinstance(backend, ShoutingASR)
    assert backend.name == "shout"
    assert registry.names() == ["echo", "shout"]
    registry.unregister("shout")
    registry.unregister("shout")
    assert registry.names() == ["echo"]


def test_fault_draw_is_deterministic_per_seed_stream_and_sequence() -> None:
    a, b = FaultSettings(fault_seed=1), FaultSettings(fault_seed=1)
    assert a.draw("s", 5) == b.draw("s", 5)
    assert a.draw("s", 5) != a.draw("s", 6)
    assert a.draw("s", 5) != a.draw("t", 5)
    assert a.draw("s", 5) != FaultSettings(fault_seed=2).draw("s", 5)
    assert all(0.0 <= a.draw("s", n) < 1.0 for n in range(200))


def test_fail_rate_fails_about_that_fraction() -> None:
    faults = FaultSettings(fault_fail_rate=0.3, fault_seed=4)
    failed = sum(faults.should_fail("stream", n) for n in range(2000))
    assert 500 <= failed <= 700
    assert not any(FaultSettings(fault_fail_rate=0.0).should_fail("s", n) for n in range(200))
    assert all(FaultSettings(fault_fail_rate=1.0).should_fail("s", n) for n in range(200))


def test_fail_sequences_always_fail() -> None:
    faults = FaultSettings(fault_fail_sequences=frozenset({2, 5}))
    assert [n for n in range(8) if faults.should_fail("s", n)] == [2, 5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fault_latency_ms": -1},
        {"fault_fail_rate": 1.5},
        {"fault_fail_rate": -0.1},
        {"fault_length_factor": 0},
        {"fault_fail_sequences": "1,x"},
    ],
)
def test_fault_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FaultSettings(**kwargs)


@pytest.mark.parametrize("code", [ErrorCode.MODEL_ERROR, ErrorCode.INVALID_AUDIO])
async def test_faulty_asr_raises_injected_errors_with_the_configured_code(code: ErrorCode) -> None:
    asr = FaultyASR(
        EchoASR(), FaultSettings(fault_fail_sequences=frozenset({7}), fault_error_code=code)
    )
    assert asr.name == "faulty(echo)"
    with pytest.raises(BackendError) as raised:
        await asr.transcribe(clip(), fragment(7))
    assert raised.value.code is code
    assert "seq 7" in raised.value.message
    assert await asr.transcribe(clip(), fragment(8)) == "[echo] stream=s1 seq=8"


async def test_faulty_asr_adds_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("sts_service.backends.fault_injection.asyncio.sleep", fake_sleep)
    await FaultyASR(EchoASR(), FaultSettings(fault_latency_ms=250)).transcribe(clip(), fragment())
    await FaultyASR(EchoASR(), FaultSettings()).transcribe(clip(), fragment())
    assert slept == [0.25]


@pytest.mark.parametrize(("factor", "frames"), [(1.0, 1600), (0.5, 800), (2.0, 3200), (1.25, 2000)])
async def test_faulty_tts_scales_the_length(factor: float, frames: int) -> None:
    source = clip(1600)
    dubbed = await FaultyTTS(EchoTTS(), FaultSettings(fault_length_factor=factor)).synthesize(
        "x", source, fragment()
    )
    assert dubbed.frame_count == frames
    assert dubbed.fmt == source.fmt
    shared = min(frames, 1600)
    np.testing.assert_array_equal(dubbed.samples[:shared], source.samples[:shared])
    assert not dubbed.samples[shared:].any()


def test_faulty_wrappers_report_the_inner_health() -> None:
    class Down(EchoTTS):
        def health(self) -> BackendState:
            return BackendState(False, "no gpu")

    assert FaultyTTS(Down(), FaultSettings()).health() == BackendState(False, "no gpu")
    assert FaultyASR(EchoASR(), FaultSettings()).health().available


def test_build_pipeline_by_name() -> None:
    pipeline = build_pipeline()
    assert [(stage, b.name) for stage, b in pipeline.backends()] == [
        ("asr", "echo"),
        ("translation", "echo"),
        ("tts", "echo"),
    ]
    wrapped = build_pipeline(faults=FaultSettings())
    assert [b.name for _, b in wrapped.backends()] == ["faulty(echo)", "echo", "faulty(echo)"]


async def test_faulty_pipeline_reports_failures_and_wrong_lengths() -> None:
    base = build_pipeline()
    failing = faulty(
        base,
        FaultSettings(fault_fail_sequences=frozenset({7}), fault_error_code=ErrorCode.RATE_LIMIT),
    )
    result = await failing.run(clip(), fragment(7), 5)
    assert result.status is ProcessStatus.FAILED
    assert result.error is not None and result.error.code is ErrorCode.RATE_LIMIT
    assert result.error.retryable and result.error.stage == "asr"

    short = faulty(base, FaultSettings(fault_length_factor=0.5))
    result = await short.run(clip(1600), fragment(1), 5)
    assert result.status is ProcessStatus.SUCCESS
    assert result.audio is not None and result.audio.frame_count == 800
