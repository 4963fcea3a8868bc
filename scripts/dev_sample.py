"""Write a short speech-like WAV sample (16-bit PCM) with the standard library only.

The dev loop and the demo dub this sample: no binary audio is committed. The sound is a
sequence of "syllables" (voiced tone bursts with harmonics and a smooth envelope) separated by
short gaps and longer phrase pauses, so a speech detector sees speech and silence alternate.
The output is deterministic for given arguments.

Runs on any Python >= 3.10 (the tools env, a package venv or a container)::

    python scripts/dev_sample.py --seconds 10 sample.wav
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import wave
from array import array
from pathlib import Path

DEFAULT_SECONDS = 10.0
DEFAULT_RATE = 16000
_PEAK = 0.5 * 32767  # -6 dBFS: loud enough to be speech, far from clipping


def speech_like(seconds: float, rate: int = DEFAULT_RATE, seed: int = 7) -> array[int]:
    """Samples (mono, int16) of `seconds` of speech-like tone bursts.

    Args:
        seconds: Duration, > 0.
        rate: Sample rate in Hz, > 0.
        seed: Seed of the syllable pattern.

    Raises:
        ValueError: if `seconds` or `rate` is not positive.
    """
    if not seconds > 0 or rate <= 0:
        raise ValueError(f"seconds ({seconds}) and rate ({rate}) must be positive")
    total = round(seconds * rate)
    samples = array("h", bytes(2 * total))
    rng = random.Random(seed)
    position = 0
    while position < total:
        length = int(rng.uniform(0.12, 0.32) * rate)
        pitch = rng.uniform(110.0, 220.0)
        for index in range(min(length, total - position)):
            t = index / rate
            envelope = math.sin(math.pi * index / length) ** 2
            tone = (
                math.sin(2 * math.pi * pitch * t)
                + 0.5 * math.sin(4 * math.pi * pitch * t)
                + 0.25 * math.sin(6 * math.pi * pitch * t)
            ) / 1.75
            samples[position + index] = int(_PEAK * envelope * tone)
        position += length
        pause = 0.45 if rng.random() < 0.15 else rng.uniform(0.04, 0.12)
        position += int(pause * rate)
    return samples


def write_sample(path: Path, seconds: float = DEFAULT_SECONDS, rate: int = DEFAULT_RATE) -> Path:
    """Write a mono 16-bit WAV of `seconds` of speech-like audio to `path`; returns `path`."""
    samples = speech_like(seconds, rate)
    if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``dev_sample.py [--seconds S] [--rate HZ] OUTPUT.wav``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="WAV file to write")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="duration")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="sample rate (Hz)")
    args = parser.parse_args(argv)
    try:
        write_sample(args.output, args.seconds, args.rate)
    except (ValueError, OSError) as exc:
        print(f"dev_sample: error: {exc}", file=sys.stderr)
        return 2
    print(f"dev_sample: wrote {args.seconds:g} s at {args.rate} Hz to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
