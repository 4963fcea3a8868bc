#!/usr/bin/env python3
"""Write a small, deterministic, speech-like WAV test sample (no binary audio in git).

    python .specify/test-fixtures/audio/make_sample.py OUT.wav [--seconds 3] [--rate 16000]
        [--channels 1]

A front end to the repository's one speech-like generator, `scripts/dev_sample.py` (standard
library only): a 1 s pattern of 0.75 s of voiced "speech" then 0.25 s of digital silence,
16-bit PCM, bit-identical on every run and platform, so tests can rely on where the speech and
the silence are: `speech_regions()` says where.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))

from dev_sample import speech_regions, write_sample

__all__ = ["main", "speech_regions", "write_sample"]


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
    write_sample(args.output, args.seconds, args.rate, args.channels)
    frames = round(args.seconds * args.rate)
    print(f"wrote {args.output}: {frames} frames, {args.rate} Hz, {args.channels} channel(s)")  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
