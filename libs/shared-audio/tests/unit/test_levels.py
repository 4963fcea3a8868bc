from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import (
    MixError,
    PcmError,
    is_silent,
    is_silent_dub,
    is_speech,
    mix_ducked,
    rms_dbfs,
    speech_steps,
)


def test_full_scale_square_is_0_dbfs() -> None:
    square = np.array([[32767], [-32768]] * 50, dtype=np.int16)
    assert rms_dbfs(square) == pytest.approx(0.0, abs=1e-3)
    assert rms_dbfs(np.array([1.0, -1.0], dtype=np.float32)) == 0.0


def test_sine_rms_is_minus_3_dbfs() -> None:
    t = np.arange(48000) / 48000
    sine = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    assert rms_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)


def test_half_scale_is_minus_6_dbfs_for_int16_and_float() -> None:
    assert rms_dbfs(np.full((10, 2), 16384, np.int16)) == pytest.approx(-6.0206, abs=1e-4)
    assert rms_dbfs(np.full(10, -0.5, np.float32)) == pytest.approx(-6.0206, abs=1e-4)


def test_int16_extremes_do_not_overflow() -> None:
    assert rms_dbfs(np.full(100000, -32768, np.int16)) == 0.0


def test_silence_and_empty_are_minus_infinity() -> None:
    for samples in (np.zeros((5, 2), np.int16), np.zeros(0, np.float32)):
        assert rms_dbfs(samples) == -math.inf


def test_one_lsb_level() -> None:
    assert rms_dbfs(np.array([1], np.int16)) == pytest.approx(-90.309, abs=1e-3)


@pytest.mark.parametrize("func", [rms_dbfs, is_speech, is_silent])
def test_level_functions_reject_unsupported_input(func: object) -> None:
    assert callable(func)
    with pytest.raises(PcmError, match="dtype int32 is not supported"):
        func(np.zeros(3, np.int32))
    with pytest.raises(PcmError, match="got list"):
        func([1, 2])


def test_speech_and_silence_decisions() -> None:
    rng = np.random.default_rng(1)
    speechish = (rng.standard_normal(16000) * 3000).astype(np.int16)  # about -21 dBFS
    hiss = (rng.standard_normal(16000) * 10).astype(np.int16)  # about -70 dBFS
    quiet = (rng.standard_normal(16000) * 100).astype(np.int16)  # about -50 dBFS
    assert is_speech(speechish)
    assert not is_silent(speechish)
    assert not is_speech(hiss)
    assert is_silent(hiss)
    assert not is_speech(quiet)
    assert not is_silent(quiet)
    assert is_speech(quiet, threshold_dbfs=-55.0)
    assert is_silent(quiet, threshold_dbfs=-40.0)
    empty = np.zeros((0, 1), np.int16)
    assert is_silent(empty)
    assert not is_speech(empty)


def test_silent_dub_is_silence_or_nothing_for_audio_that_is_not_silent() -> None:
    rng = np.random.default_rng(2)
    speech = (rng.standard_normal((16000, 1)) * 3000).astype(np.int16)
    quiet = (rng.standard_normal((16000, 1)) * 100).astype(np.int16)  # about -50 dBFS
    hiss = (rng.standard_normal((16000, 1)) * 10).astype(np.int16)  # about -70 dBFS
    zeros = np.zeros((16000, 1), np.int16)
    empty = np.zeros((0, 1), np.int16)
    assert is_silent_dub(speech, zeros)
    assert is_silent_dub(speech, empty)
    assert is_silent_dub(speech, hiss)  # "almost nothing" is still nothing
    assert is_silent_dub(quiet, zeros)  # quiet programme audio is not silence
    assert not is_silent_dub(speech, quiet)
    assert not is_silent_dub(zeros, zeros)  # silence in, silence out
    assert not is_silent_dub(hiss, empty)
    assert not is_silent_dub(empty, empty)
    assert is_silent_dub(quiet, zeros, threshold_dbfs=-40.0) is False


def test_mix_ducked_int16_applies_gain_and_rounds() -> None:
    original = np.array([[10000, -10000], [0, 2]], np.int16)
    dub = np.array([[100, 100], [-5, 0]], np.int16)
    out = mix_ducked(original, dub, duck_db=-6.0)
    gain = 10 ** (-6 / 20)
    expected = np.rint(original * gain + dub).astype(np.int16)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, expected)
    assert out.tolist() == [[5112, -4912], [-5, 1]]


def test_mix_ducked_clips_int16_both_ways() -> None:
    original = np.array([30000, -30000], np.int16)
    dub = np.array([30000, -30000], np.int16)
    assert mix_ducked(original, dub, duck_db=0.0).tolist() == [32767, -32768]


def test_mix_ducked_default_is_minus_12_db_and_silent_dub_only_ducks() -> None:
    original = np.full((4, 1), 0.8, np.float32)
    out = mix_ducked(original, np.zeros_like(original))
    assert out.dtype == np.float32
    assert rms_dbfs(out) == pytest.approx(rms_dbfs(original) - 12.0, abs=1e-4)


def test_mix_ducked_float_clips_to_unit_range() -> None:
    original = np.array([0.9, -0.9], np.float64)
    out = mix_ducked(original, np.array([0.9, -0.9]), duck_db=0.0)
    assert out.tolist() == [1.0, -1.0]
    assert original.tolist() == [0.9, -0.9]  # inputs untouched


def test_mix_ducked_rejects_mismatches() -> None:
    a = np.zeros((4, 2), np.int16)
    with pytest.raises(MixError, match=r"shape \(4, 2\) but dub has \(3, 2\).*fit_to_length"):
        mix_ducked(a, np.zeros((3, 2), np.int16))
    with pytest.raises(MixError, match="original is int16 but dub is float32"):
        mix_ducked(a, np.zeros((4, 2), np.float32))
    with pytest.raises(MixError, match="duck_db must be finite, got nan"):
        mix_ducked(a, a, duck_db=math.nan)
    with pytest.raises(PcmError, match="mix_ducked: dtype uint8 is not supported"):
        mix_ducked(np.zeros(2, np.uint8), np.zeros(2, np.uint8))


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize(("frames", "channels", "step"), [(1000, 1, 160), (997, 2, 160), (5, 1, 7)])
def test_speech_steps_is_is_speech_on_each_step(
    dtype: type, frames: int, channels: int, step: int
) -> None:
    rng = np.random.default_rng(frames + channels)
    scale = 32768.0 if dtype is np.int16 else 1.0
    levels = rng.choice([0.0, 0.001, 0.005, 0.1], size=frames)[:, None]
    noise = rng.normal(0, 1, (frames, channels)) * levels * scale
    samples: npt.NDArray[Any] = noise.astype(dtype)
    steps = speech_steps(samples, step)
    expected = [is_speech(samples[at : at + step]) for at in range(0, frames, step)]
    assert steps.tolist() == expected
    assert speech_steps(samples, step, threshold_dbfs=-30.0).tolist() == [
        is_speech(samples[at : at + step], threshold_dbfs=-30.0) for at in range(0, frames, step)
    ]


def test_speech_steps_judges_at_is_speechs_level_and_refuses_bad_input() -> None:
    default = inspect.signature(is_speech).parameters["threshold_dbfs"].default
    assert inspect.signature(speech_steps).parameters["threshold_dbfs"].default == default
    assert speech_steps(np.zeros((0, 1), np.int16), 160).tolist() == []
    with pytest.raises(ValueError, match="step must be at least 1"):
        speech_steps(np.zeros((10, 1), np.int16), 0)
    with pytest.raises(PcmError, match="speech_steps: dtype int32"):
        speech_steps(np.zeros((10, 1), np.int32), 5)
