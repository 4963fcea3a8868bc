"""Fitting dubbed speech into its slot: the source segment's duration.

The TTS first aims with its speech rate (`speech_rate_for`); what is left is corrected with a
time-stretch that keeps the pitch (`stretch_to`, Rubber Band through pedalboard); only then is
the audio padded with silence or, as the last resort, trimmed (`Fit.trimmed_s`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: The speech rate (words per minute) a TTS speaks at when nothing needs fitting.
BASE_WPM = 175
#: The slowest and fastest rates used to aim; outside them speech sounds unnatural.
MIN_WPM = 140
MAX_WPM = 280
#: The most the stretch may speed up (shorten) or slow down (lengthen) the speech.
MAX_SPEEDUP = 1.5
MAX_SLOWDOWN = 1.25
#: Durations within this fraction of the slot are left as they are.
TOLERANCE = 0.03

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Fit:
    """Speech fitted into a slot, and what it took.

    Attributes:
        samples: Mono float32 samples, exactly the slot's length.
        stretch: Speed factor of the time-stretch: 1.0 none, 1.2 = 20% faster (shorter),
            0.9 = 10% slower (longer).
        padded_s: Silence added at the end, in seconds.
        trimmed_s: Speech cut at the end, in seconds (the last resort).
    """

    samples: Float32Array
    stretch: float
    padded_s: float
    trimmed_s: float

    def log(
        self, logger: logging.Logger, fragment_id: str, voice: str, how: str, **aim: object
    ) -> None:
        """One INFO line per dub: how the TTS aimed (`how`, and `aim` as fields), then the fit."""
        logger.info(
            "fragment %s: dub spoken %s, stretched x%.3f, padded %.2f s, trimmed %.2f s",
            fragment_id,
            how,
            self.stretch,
            self.padded_s,
            self.trimmed_s,
            extra={
                "fragment_id": fragment_id,
                "voice": voice,
                **aim,
                "stretch": self.stretch,
                "padded_s": round(self.padded_s, 3),
                "trimmed_s": round(self.trimmed_s, 3),
            },
        )


def speech_rate_for(natural_s: float, slot_s: float, base_wpm: int = BASE_WPM) -> int:
    """The speech rate that makes speech lasting `natural_s` at `base_wpm` fill `slot_s`.

    Example:
        >>> speech_rate_for(natural_s=6.0, slot_s=5.0)
        210
    """
    if natural_s <= 0 or slot_s <= 0:
        return base_wpm
    wanted = base_wpm * natural_s / slot_s
    return round(min(MAX_WPM, max(MIN_WPM, wanted)))


def trim_silence(samples: Float32Array, threshold: float = 1e-3) -> Float32Array:
    """`samples` without the near-silent frames at both ends (TTS engines add some)."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples[:0]
    return samples[loud[0] : loud[-1] + 1]


def time_stretch(samples: Float32Array, rate: int, speed: float) -> Float32Array:
    """Change the duration by 1/`speed` keeping the pitch (Rubber Band, via pedalboard)."""
    pedalboard: Any = importlib.import_module("pedalboard")
    stretched = pedalboard.time_stretch(
        np.ascontiguousarray(samples[np.newaxis, :], dtype=np.float32),
        float(rate),
        stretch_factor=float(speed),
    )
    result: Float32Array = np.asarray(stretched, dtype=np.float32)[0]
    return result


def fit_to_slot(samples: Float32Array, rate: int, slot_frames: int) -> Fit:
    """Stretch `samples` towards `slot_frames` within the limits, then pad or trim to it.

    Args:
        samples: Mono float32 speech (already spoken at the aimed rate).
        rate: Sample rate of `samples` in Hz.
        slot_frames: The wanted length in frames.
    """
    stretch = 1.0
    frames = samples.shape[0]
    if frames and slot_frames and abs(frames / slot_frames - 1.0) > TOLERANCE:
        stretch = min(MAX_SPEEDUP, max(1.0 / MAX_SLOWDOWN, frames / slot_frames))
        samples = time_stretch(samples, rate, stretch)
        frames = samples.shape[0]
    padded = max(0, slot_frames - frames)
    trimmed = max(0, frames - slot_frames)
    if padded:
        samples = np.concatenate([samples, np.zeros(padded, dtype=np.float32)])
    elif trimmed:
        samples = samples[:slot_frames]
    return Fit(samples, round(stretch, 3), padded / rate, trimmed / rate)
