"""Sample-rate conversion through python-soxr (libsoxr), not hand-written DSP."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # soxr ships no py.typed marker

from shared_audio.errors import AudioError
from shared_audio.pcm import float32_to_int16, int16_to_float32

#: soxr quality presets, from fastest to best.
Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]

#: dtypes libsoxr converts natively (others would be silently converted by soxr).
_RESAMPLE_DTYPES = frozenset({np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.float64)})


def resample(
    samples: npt.NDArray[Any], src_rate: int, dst_rate: int, *, quality: Quality = "VHQ"
) -> npt.NDArray[Any]:
    """Resample audio from ``src_rate`` to ``dst_rate`` Hz.

    The dtype (``int16``, ``float32`` or ``float64``) and the layout (1-D mono or
    ``(frames, channels)``) are kept. ``int16`` goes through ``float32`` and comes back
    rounded and clipped, without dither, so digital silence stays silent. The output has
    ``frames * dst_rate / src_rate`` frames, rounded half up.

    Args:
        samples: 1-D mono or ``(frames, channels)`` samples.
        src_rate: Rate of ``samples`` in Hz (> 0).
        dst_rate: Wanted rate in Hz (> 0).
        quality: libsoxr quality preset; the default "VHQ" is transparent for speech and
            music and still far faster than real time.

    Returns:
        A new array at ``dst_rate`` (a copy when the rates are equal).

    Raises:
        AudioError: for a non-positive or non-int rate, an unsupported dtype or an array that
            is neither 1-D nor 2-D.

    Example:
        >>> resample(np.zeros((48000, 2), dtype=np.int16), 48000, 16000).shape
        (16000, 2)
    """
    for name, rate in (("src_rate", src_rate), ("dst_rate", dst_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise AudioError(f"resample: {name} must be a positive int (Hz), got {rate!r}")
    if not isinstance(samples, np.ndarray) or samples.ndim not in (1, 2):
        shape = getattr(samples, "shape", type(samples).__name__)
        raise AudioError(f"resample: samples must be 1-D or (frames, channels), got {shape}")
    if samples.dtype not in _RESAMPLE_DTYPES:
        raise AudioError(
            f"resample: dtype {samples.dtype} is not supported; use int16, float32 or float64"
        )
    if src_rate == dst_rate:
        return samples.copy()
    frames = samples.shape[0]
    if frames == 0:
        return np.empty((0, *samples.shape[1:]), dtype=samples.dtype)
    if samples.dtype == np.int16:
        # Through float32 rather than libsoxr's int16 output, which adds dither noise: this way
        # digital silence stays silent and the result is plainly rounded and clipped.
        as_float = _soxr_resample(int16_to_float32(samples), src_rate, dst_rate, quality)
        return float32_to_int16(as_float)
    return _soxr_resample(samples, src_rate, dst_rate, quality)


def _soxr_resample(
    samples: npt.NDArray[Any], src_rate: int, dst_rate: int, quality: Quality
) -> npt.NDArray[Any]:
    result: npt.NDArray[Any] = soxr.resample(
        np.ascontiguousarray(samples), src_rate, dst_rate, quality=quality
    )
    return result
