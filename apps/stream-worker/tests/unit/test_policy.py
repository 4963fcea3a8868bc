"""The dub-or-fallback rules, judged on answers directly (no HTTP involved)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from worker_support import FMT, tone

from shared_utils.contract import AudioPayload, ProcessResponse, ProcessStatus
from stream_worker.client import StsAnswer
from stream_worker.outcome import FallbackReason
from stream_worker.policy import judge


def answer(pcm: npt.NDArray[np.int16], status: ProcessStatus = ProcessStatus.SUCCESS) -> StsAnswer:
    response = ProcessResponse(
        fragment_id="s-0",
        stream_id="s",
        sequence_number=0,
        status=status,
        audio=AudioPayload.from_pcm(pcm.astype("<i2").tobytes(), FMT),
        processing_time_ms=3.0,
    )
    return StsAnswer(response, round_trip_ms=12.0, retries=1)


def test_a_good_answer_is_the_dub_with_its_timings() -> None:
    original = tone(0.5)
    result = judge(answer(original // 2), original, FMT)
    assert result.reason is None and result.audio is not None
    assert np.array_equal(result.audio, original // 2)
    assert (result.round_trip_ms, result.processing_ms, result.retries) == (12.0, 3.0, 1)


def test_quiet_programme_audio_dubbed_as_silence_is_a_silent_dub() -> None:
    # About -50 dBFS: too quiet to count as speech, far from silence. sts-service refuses a
    # silent dub of it, so the worker must too (one definition, shared_audio.is_silent_dub).
    rng = np.random.default_rng(3)
    quiet = (rng.standard_normal((8000, 1)) * 100).astype(np.int16)
    result = judge(answer(np.zeros_like(quiet)), quiet, FMT)
    assert result.reason is FallbackReason.SILENT_DUB
    assert result.round_trip_ms == 12.0


def test_silence_in_silence_out_and_wrong_length_is_fitted() -> None:
    silence = np.zeros((8000, 1), np.int16)
    result = judge(answer(silence[:4000]), silence, FMT)
    assert result.reason is None and result.fitted
    assert result.audio is not None and result.audio.shape == silence.shape


def test_partial_falls_back_even_with_good_audio() -> None:
    original = tone(0.5)
    partial = answer(original).response.model_copy(update={"status": ProcessStatus.PARTIAL})
    result = judge(StsAnswer(partial, 1.0, 0), original, FMT)
    assert result.reason is FallbackReason.PARTIAL and result.audio is None


def test_empty_audio_for_a_segment_with_frames_is_an_error_not_silence() -> None:
    result = judge(answer(np.zeros((0, 1), np.int16)), np.zeros((800, 1), np.int16), FMT)
    assert result.reason is FallbackReason.STS_ERROR and "empty audio" in result.detail
