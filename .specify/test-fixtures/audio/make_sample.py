#!/usr/bin/env python3
"""Write a small, deterministic, speech-like WAV test sample (no binary audio in git).

    python .specify/test-fixtures/audio/make_sample.py OUT.wav [--seconds 3] [--rate 16000]
        [--channels 1]

The signal repeats a 1 s pattern: 0.75 s of "speech" (a 140 Hz voiced tone with harmonics
and a syllable-rate envelope, -12 dBFS peak or so) then 0.25 s of digital silence. The output
is 16-bit PCM, bit-identical on every run and every platform (standard library only), so
tests can rely on where the speech and the silence are: `speech_regions()` says where.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import wave
from pathlib import Path

PATTERN_S = 1.0
SPEECH_S = 0.75
FUNDAMENTAL_HZ = 140.0
SYLLABLE_HZ = 4.0
PEAK = 8000  # of 32767


def sample_value(t: float) -> int:
    """The mono sample at time `t` (seconds)."""
    phase = t % PATTERN_S
    if phase >= SPEECH_S:
        return 0
    envelope = 0.55 + 0.45 * math.sin(2 * math.pi * SYLLABLE_HZ * phase) ** 2
    edge = min(1.0, phase / 0.01, (SPEECH_S - phase) / 0.01)  # 10 ms fades: no clicks
    voiced = sum(math.sin(2 * math.pi * FUNDAMENTAL_HZ * k * t) / k for k in (1, 2, 3, 5))
    return round(PEAK * 0.55 * edge * envelope * voiced)


def speech_regions(seconds: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of each speech burst of a sample `seconds` long."""
    regions = []
    start = 0.0
    while start < seconds:
        regions.append((start, min(start + SPEECH_S, seconds)))
        start += PATTERN_S
    return regions


def pcm(seconds: float, rate: int, channels: int) -> bytes:
    """Interleaved 16-bit little-endian PCM."""
    frames = round(seconds * rate)
    values = [sample_value(i / rate) for i in range(frames)]
    return b"".join(struct.pack("<h", v) * channels for v in values)


def write_sample(path: Path, seconds: float = 3.0, rate: int = 16000, channels: int = 1) -> int:
    """Write the sample; return its frame count."""
    data = pcm(seconds, rate, channels)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    return len(data) // (2 * channels)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, choices=(1, 2), default=1)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600:
        parser.error(f"--seconds must be in (0, 600], got {args.seconds}")
    frames = write_sample(args.output, args.seconds, args.rate, args.channels)
    print(f"wrote {args.output}: {frames} frames, {args.rate} Hz, {args.channels} channel(s)")  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
