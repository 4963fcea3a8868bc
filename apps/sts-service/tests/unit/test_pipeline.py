from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from shared_audio import AudioFormat
from shared_utils.contract import AudioPayload, ErrorCode, ProcessRequest, ProcessStatus
from sts_service.backends import EchoASR, EchoTranslator, EchoTTS
from sts_service.backends.base import (
    ASRBackend,
    AudioClip,
    BackendError,
    BackendState,
    Fragment,
    SyncASRBackend,
    SyncTranslationBackend,
    SyncTTSBackend,
    TranslationBackend,
    TTSBackend,
)
from sts_service.pipeline import Pipeline

FMT = AudioFormat(16000, 1)
FRAGMENT = Fragment("f-1", "s", 3, "en", "es")


def clip(frames: int = 1600, amplitude: float = 0.3, fmt: AudioFormat = FMT) -> AudioClip:
    t = np.arange(frames) / fmt.sample_rate
    wave = (amplitude * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    return AudioClip(np.repeat(wave[:, None], fmt.channels, axis=1), fmt)


def echo_pipeline() -> Pipeline:
    return Pipeline(EchoASR(), EchoTranslator(), EchoTTS())


class SilentTTS(TTSBackend):
    name = "silent"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(np.zeros_like(source.samples), source.fmt)


class EmptyTTS(TTSBackend):
    name = "empty"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(source.samples[:0], source.fmt)


class ResampledTTS(TTSBackend):
    name = "wrong-format"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(source.samples, AudioFormat(24000, 1))


class CrashingTranslator(TranslationBackend):
    name = "crash"

    async def translate(self, text: str, fragment: Fragment) -> str:
        raise ZeroDivisionError("boom")


class RateLimitedASR(ASRBackend):
    name = "limited"

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        raise BackendError(ErrorCode.RATE_LIMIT, "quota exhausted")


class SlowTTS(TTSBackend):
    name = "slow"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        await asyncio.sleep(10)
        return source


class BlockingASR(SyncASRBackend):
    """A blocking engine: sleeps in its worker thread, then marks itself finished."""

    name = "blocking"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.finished = threading.Event()

    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        time.sleep(self.seconds)
        self.finished.set()
        return "late"


class UpperTranslator(SyncTranslationBackend):
    name = "upper"

    def translate_sync(self, text: str, fragment: Fragment) -> str:
        self.thread = threading.current_thread()
        return text.upper()


class HalfTTS(SyncTTSBackend):
    name = "half"

    def synthesize_sync(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(source.samples[: source.frame_count // 2], source.fmt)


class DownASR(EchoASR):
    def health(self) -> BackendState:
        return BackendState(False, "model not loaded")


class BrokenHealthTTS(EchoTTS):
    def health(self) -> BackendState:
        raise OSError("gpu gone")


async def test_echo_pipeline_returns_the_input_with_tagged_text() -> None:
    source = clip()
    result = await echo_pipeline().run(source, FRAGMENT, timeout_s=5)
    assert result.status is ProcessStatus.SUCCESS
    assert result.error is None
    assert result.transcript == "[echo] stream=s seq=3"
    assert result.translated_text == "[es] [echo] stream=s seq=3"
    assert result.audio is not None
    assert result.audio.fmt == source.fmt
    np.testing.assert_array_equal(result.audio.samples, source.samples)


async def test_every_stage_is_timed() -> None:
    class SleepyTranslator(TranslationBackend):
        async def translate(self, text: str, fragment: Fragment) -> str:
            await asyncio.sleep(0.02)
            return text

    result = await Pipeline(EchoASR(), SleepyTranslator(), EchoTTS()).run(clip(), FRAGMENT, 5)
    timings = result.timings
    assert timings.translation_ms >= 20
    assert timings.asr_ms >= 0 and timings.tts_ms >= 0
    assert timings.translation_ms > timings.asr_ms


async def test_stages_run_in_order_with_the_previous_output() -> None:
    calls: list[str] = []

    class RecordingASR(ASRBackend):
        async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
            calls.append("asr")
            return "hello"

    class RecordingTranslator(TranslationBackend):
        async def translate(self, text: str, fragment: Fragment) -> str:
            calls.append(f"translation:{text}")
            return "hola"

    class RecordingTTS(EchoTTS):
        async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
            calls.append(f"tts:{text}")
            return source

    pipeline = Pipeline(RecordingASR(), RecordingTranslator(), RecordingTTS())
    result = await pipeline.run(clip(), FRAGMENT, 5)
    assert calls == ["asr", "translation:hello", "tts:hola"]
    assert (result.transcript, result.translated_text) == ("hello", "hola")


@pytest.mark.parametrize("tts", [SilentTTS(), EmptyTTS(), ResampledTTS()])
async def test_the_dub_is_answered_as_made_for_the_client_to_judge(tts: TTSBackend) -> None:
    # Format, level and length are checked once, by the client that receives the dub.
    source = clip()
    result = await Pipeline(EchoASR(), EchoTranslator(), tts).run(source, FRAGMENT, 5)
    assert result.status is ProcessStatus.SUCCESS and result.error is None
    made = await tts.synthesize("", source, FRAGMENT)
    assert result.audio is not None and result.audio.fmt == made.fmt
    np.testing.assert_array_equal(result.audio.samples, made.samples)


async def test_echo_answers_the_request_payload_without_a_conversion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = AudioPayload.from_samples(clip().samples, FMT)
    conversions: list[str] = []
    for name in ("samples", "from_samples", "pcm_bytes", "from_pcm"):
        original = getattr(AudioPayload, name)

        def counted(
            *args: object, _name: str = name, _original: Callable[..., object] = original
        ) -> object:
            conversions.append(_name)
            return _original(*args)

        monkeypatch.setattr(AudioPayload, name, counted)
    result = await echo_pipeline().run(AudioClip.from_payload(payload), FRAGMENT, 5)
    assert result.status is ProcessStatus.SUCCESS
    assert result.audio is not None and result.audio.to_payload() is payload
    assert conversions == []


async def test_empty_input_is_success() -> None:
    empty = AudioClip(np.zeros((0, 1), dtype=np.int16), FMT)
    result = await echo_pipeline().run(empty, FRAGMENT, 5)
    assert result.status is ProcessStatus.SUCCESS
    assert result.audio is not None and result.audio.frame_count == 0


async def test_unexpected_exception_is_failed_model_error_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = Pipeline(EchoASR(), CrashingTranslator(), EchoTTS())
    with caplog.at_level(logging.ERROR, logger="sts_service.pipeline"):
        result = await pipeline.run(clip(), FRAGMENT, 5)
    assert result.status is ProcessStatus.FAILED
    assert result.audio is None
    assert result.transcript == "[echo] stream=s seq=3"
    assert result.error is not None
    assert result.error.code is ErrorCode.MODEL_ERROR
    assert result.error.retryable is True
    assert result.error.stage == "translation"
    assert "'crash'" in result.error.message and "ZeroDivisionError: boom" in result.error.message
    records = [r for r in caplog.records if r.exc_info]
    assert records and records[0].exc_info is not None
    assert records[0].exc_info[0] is ZeroDivisionError


async def test_backend_error_keeps_its_code() -> None:
    result = await Pipeline(RateLimitedASR(), EchoTranslator(), EchoTTS()).run(clip(), FRAGMENT, 5)
    assert result.status is ProcessStatus.FAILED
    assert result.error is not None
    assert result.error.code is ErrorCode.RATE_LIMIT
    assert result.error.stage == "asr"
    assert "quota exhausted" in result.error.message
    assert result.timings.translation_ms == 0


async def test_pipeline_keeps_working_after_a_failure() -> None:
    pipeline = Pipeline(EchoASR(), CrashingTranslator(), EchoTTS())
    assert (await pipeline.run(clip(), FRAGMENT, 5)).status is ProcessStatus.FAILED
    pipeline.translator = EchoTranslator()
    assert (await pipeline.run(clip(), FRAGMENT, 5)).status is ProcessStatus.SUCCESS


async def test_deadline_gives_timeout_naming_the_stage() -> None:
    result = await Pipeline(EchoASR(), EchoTranslator(), SlowTTS()).run(clip(), FRAGMENT, 0.05)
    assert result.status is ProcessStatus.TIMEOUT
    assert result.audio is None
    assert result.translated_text == "[es] [echo] stream=s seq=3"
    assert result.error is not None
    assert result.error.code is ErrorCode.TIMEOUT
    assert result.error.retryable is True
    assert result.error.stage == "tts"
    assert "timeout_ms=50" in result.error.message and "'slow'" in result.error.message
    assert result.timings.tts_ms >= 40


async def test_deadline_abandons_a_blocking_backend() -> None:
    blocking = BlockingASR(seconds=1.0)
    result = await Pipeline(blocking, EchoTranslator(), EchoTTS()).run(clip(), FRAGMENT, 0.05)
    assert result.status is ProcessStatus.TIMEOUT
    assert result.error is not None and result.error.stage == "asr"
    # The answer came while the engine was still busy in its thread.
    assert not blocking.finished.is_set()
    assert blocking.finished.wait(5)


async def test_sync_backends_run_in_worker_threads() -> None:
    translator = UpperTranslator()
    pipeline = Pipeline(EchoASR(), translator, HalfTTS())
    result = await pipeline.run(clip(1600), FRAGMENT, 5)
    assert result.translated_text == "[ECHO] STREAM=S SEQ=3"
    assert translator.thread is not threading.main_thread()
    assert result.audio is not None and result.audio.frame_count == 800


class NoneASR(ASRBackend):
    name = "none"

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        return None  # type: ignore[return-value]  # a misbehaving backend, on purpose


class BytesTranslator(TranslationBackend):
    name = "bytes"

    async def translate(self, text: str, fragment: Fragment) -> str:
        return text.encode()  # type: ignore[return-value]  # a misbehaving backend, on purpose


class FloatTTS(TTSBackend):
    name = "float"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(source.samples.astype(np.float32), source.fmt)


class FlatTTS(TTSBackend):
    name = "flat"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return AudioClip(source.samples.reshape(-1), source.fmt)


class RawBytesTTS(TTSBackend):
    name = "raw"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        return source.samples.tobytes()  # type: ignore[return-value]  # misbehaving on purpose


@pytest.mark.parametrize(
    ("pipeline", "stage", "expected"),
    [
        (
            Pipeline(NoneASR(), EchoTranslator(), EchoTTS()),
            "asr",
            "returned NoneType, expected str",
        ),
        (
            Pipeline(EchoASR(), BytesTranslator(), EchoTTS()),
            "translation",
            "returned bytes, expected str",
        ),
        (Pipeline(EchoASR(), EchoTranslator(), FloatTTS()), "tts", "dtype float32"),
        (Pipeline(EchoASR(), EchoTranslator(), FlatTTS()), "tts", "shape (1600,)"),
        (Pipeline(EchoASR(), EchoTranslator(), RawBytesTTS()), "tts", "returned bytes"),
    ],
)
async def test_malformed_backend_output_is_failed(
    pipeline: Pipeline, stage: str, expected: str
) -> None:
    result = await pipeline.run(clip(), FRAGMENT, 5)
    assert result.status is ProcessStatus.FAILED
    assert result.error is not None
    assert result.error.code is ErrorCode.MODEL_ERROR
    assert result.error.stage == stage
    assert expected in result.error.message


def test_health_reports_each_backend() -> None:
    report = Pipeline(DownASR(), EchoTranslator(), BrokenHealthTTS()).health()
    assert [(h.stage, h.available) for h in report] == [
        ("asr", False),
        ("translation", True),
        ("tts", False),
    ]
    assert report[0].detail == "model not loaded"
    assert report[2].detail is not None and "OSError: gpu gone" in report[2].detail


def test_clip_round_trips_through_a_payload() -> None:
    source = clip(320, fmt=AudioFormat(48000, 2))
    payload = AudioClip(source.samples.copy(), source.fmt).to_payload()
    decoded = AudioClip.from_payload(payload)
    assert decoded.fmt == source.fmt
    np.testing.assert_array_equal(decoded.samples, source.samples)
    # A clip decoded from a payload answers with that same payload (no re-encoding).
    assert decoded.to_payload() is payload


def test_fragment_from_request() -> None:
    payload = AudioPayload.from_pcm(b"\x00\x00", FMT)
    request = ProcessRequest.model_validate(
        {
            "fragment_id": "f",
            "stream_id": "s",
            "sequence_number": 9,
            "audio": payload.model_dump(),
            "config": {"source_language": "en", "target_language": "fr", "voice": "v1"},
            "previous_text": "Good evening.",
        }
    )
    assert Fragment.from_request(request) == Fragment(
        "f", "s", 9, "en", "fr", "v1", previous_text="Good evening."
    )
