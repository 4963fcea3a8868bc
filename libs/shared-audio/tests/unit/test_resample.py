from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import AudioError, float32_to_int16, resample, rms_dbfs

COMMON_RATES = [8000, 16000, 22050, 24000, 44100, 48000]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> npt.NDArray[Any]:
    t: npt.NDArray[np.float64] = np.arange(int(rate * seconds)) / rate
    wave: npt.NDArray[np.float32] = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave


@pytest.mark.parametrize("src", COMMON_RATES)
@pytest.mark.parametrize("dst", COMMON_RATES)
def test_common_rates_keep_a_1khz_tone(src: int, dst: int) -> None:
    x = tone(1000, src, 0.1)
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert abs(y.shape[0] - x.shape[0] * dst / src) <= 1
    # Away from the edges the output is the same tone at the new rate.
    expected = tone(1000, dst, 0.1)[: y.shape[0]]
    core = slice(dst // 100, y.shape[0] - dst // 100)
    err = y[core] - expected[core]
    assert rms_dbfs(err) < -60.0


def test_anti_aliasing_removes_content_above_new_nyquist() -> None:
    x = tone(10000, 48000, 0.2)  # above the 8 kHz Nyquist frequency of 16 kHz
    y = resample(x, 48000, 16000)
    assert rms_dbfs(y[200:-200]) < -80.0


def test_stereo_int16_keeps_layout_dtype_and_channels() -> None:
    left = float32_to_int16(tone(440, 48000, 0.1))
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    y = resample(stereo, 48000, 16000)
    assert y.dtype == np.int16
    assert y.shape == (1600, 2)
    assert not y[:, 1].any()  # channels stay separate
    assert abs(_peak_dbfs(y[100:-100, 0]) - _peak_dbfs(left)) < 0.1


def test_float64_and_non_contiguous_input() -> None:
    x = np.stack([tone(440, 16000, 0.05)] * 3, axis=1).astype(np.float64)
    view = x[:, ::2]  # non-contiguous (frames, 2) view
    y = resample(view, 16000, 48000)
    assert y.dtype == np.float64
    assert y.shape == (2400, 2)
    np.testing.assert_allclose(y[:, 0], y[:, 1])


def test_same_rate_returns_a_copy() -> None:
    x = np.arange(6, dtype=np.int16).reshape(3, 2)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(x, y)


def test_empty_input() -> None:
    assert resample(np.zeros((0, 2), np.int16), 48000, 16000).shape == (0, 2)
    assert resample(np.zeros(0, np.float32), 16000, 48000).shape == (0,)


def test_quality_option() -> None:
    x = tone(1000, 48000, 0.05)
    assert resample(x, 48000, 16000, quality="LQ").shape == (800,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros(4, np.float32), 0, 16000), "src_rate must be a positive int"),
        ((np.zeros(4, np.float32), 16000, -1), "dst_rate must be a positive int"),
        ((np.zeros(4, np.float32), 16000.0, 8000), "src_rate must be a positive int"),
        ((np.zeros(4, np.float32), True, 8000), "src_rate must be a positive int"),
        (
            (np.zeros((2, 2, 2), np.float32), 16000, 8000),
            r"1-D or \(frames, channels\), got \(2, 2, 2\)",
        ),
        (([1.0, 2.0], 16000, 8000), "got list"),
        ((np.zeros(4, np.int32), 16000, 8000), "dtype int32 is not supported"),
    ],
)
def test_resample_rejects_bad_input(args: tuple[object, object, object], message: str) -> None:
    with pytest.raises(AudioError, match=message):
        resample(*args)  # type: ignore[arg-type]  # invalid on purpose


def _peak_dbfs(samples: npt.NDArray[Any]) -> float:
    """Peak level in dBFS of int16 or float samples (a test helper; not library surface)."""
    full_scale = 32768.0 if samples.dtype == np.int16 else 1.0
    peak = float(np.max(np.abs(samples.astype(np.float64))))
    return 20 * np.log10(peak / full_scale) if peak else -np.inf
