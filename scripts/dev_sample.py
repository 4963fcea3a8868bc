"""The repository's one speech-like audio generator (16-bit WAV, standard library only).

A 1 s pattern repeats: 0.75 s of "speech" (a 140 Hz voiced tone with harmonics and a
syllable-rate envelope, about -6 dBFS peak), then 0.25 s of digital silence, so a speech
detector sees both. The output is bit-identical on every run and platform.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

DEFAULT_SECONDS = 10.0
DEFAULT_RATE = 16000
PATTERN_S = 1.0
SPEECH_S = 0.75
FUNDAMENTAL_HZ = 140.0
SYLLABLE_HZ = 4.0
_HARMONICS = (1, 2, 3, 5)
_PEAK = 0.5 * 32767  # -6 dBFS: loud enough to be speech, far from clipping
_FADE_S = 0.01  # fades at each burst's edges: no clicks
#: The largest value of the harmonic sum, so that `_PEAK` is the real peak.
_VOICED_MAX = max(
    abs(sum(math.sin(2 * math.pi * k * i / 4096) / k for k in _HARMONICS)) for i in range(4096)
)


def sample_value(t: float) -> int:
    """The mono sample at time `t` (seconds)."""
    phase = t % PATTERN_S
    if phase >= SPEECH_S:
        return 0
    envelope = 0.55 + 0.45 * math.sin(2 * math.pi * SYLLABLE_HZ * phase) ** 2
    edge = min(1.0, phase / _FADE_S, (SPEECH_S - phase) / _FADE_S)
    voiced = sum(math.sin(2 * math.pi * FUNDAMENTAL_HZ * k * t) / k for k in _HARMONICS)
    return round(_PEAK * edge * envelope * voiced / _VOICED_MAX)


def speech_regions(seconds: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of each speech burst of a sample `seconds` long."""
    regions = []
    start = 0.0
    while start < seconds:
        regions.append((start, min(start + SPEECH_S, seconds)))
        start += PATTERN_S
    return regions


def write_sample(
    path: Path, seconds: float = DEFAULT_SECONDS, rate: int = DEFAULT_RATE, channels: int = 1
) -> Path:
    """Write a 16-bit WAV of `seconds` of speech-like audio (every channel the same) to `path`.

    Raises:
        ValueError: if `seconds`, `rate` or `channels` is not positive.
    """
    if not seconds > 0 or rate <= 0 or channels <= 0:
        raise ValueError(
            f"seconds ({seconds}), rate ({rate}) and channels ({channels}) must be positive"
        )
    mono = [sample_value(index / rate) for index in range(round(seconds * rate))]
    samples = array("h", mono if channels == 1 else [v for v in mono for _ in range(channels)])
    if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path
