"""Benchmarks for shared_audio: `make bench` (runs `python bench/bench_audio.py`).

Every figure comes beside a reference measured in the same run on the same data:
  * conversions: throughput in MB/s of input bytes, beside a plain numpy copy of those bytes;
  * segmentation + reassembly of 10 minutes of 48 kHz stereo: time, plus proof that the
    segments share memory with the stream (zero copy), beside a plain copy of the stream;
  * resampling 48 kHz -> 16 kHz mono: speed as a multiple of real time.
Timings use time.perf_counter, repeated, best run kept. Total runtime is a few seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio import (
    AudioFormat,
    Segment,
    Segmenter,
    array_to_pcm,
    float32_to_int16,
    int16_to_float32,
    pcm_to_array,
    resample,
)

RATE = 48000
CONVERSION_SECONDS = 60
STREAM_SECONDS = 600
SEGMENT_SECONDS = 2
RESAMPLE_SECONDS = 60
REPEATS = 5
CONVERSION_GOAL = 0.50
RESAMPLE_GOAL = 200.0


def best_time(func: Callable[[], object], repeats: int = REPEATS) -> float:
    """Run ``func`` ``repeats`` times and return the fastest wall-clock time in seconds."""
    return best_times({"only": func}, repeats)["only"]


def best_times(funcs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Time every function once per round, interleaved, and keep each one's fastest run.

    Interleaving exposes the reference and the measured code to the same machine load, which
    matters on a shared machine.
    """
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def out(line: str = "") -> None:
    """Print one line of the report."""
    sys.stdout.write(line + "\n")


def verdict(ok: bool) -> str:
    """Short pass/fail marker for a goal."""
    return "met" if ok else "NOT MET"


def conversion_cases(
    pcm: bytes, samples: npt.NDArray[np.int16], fmt: AudioFormat
) -> dict[str, Callable[[], object]]:
    """The conversions to time on one buffer, with the copy reference first."""
    floats = int16_to_float32(samples)
    return {
        "numpy copy (reference)": lambda: np.frombuffer(pcm, dtype=np.uint8).copy(),
        "pcm_to_array": lambda: pcm_to_array(pcm, fmt),
        "array_to_pcm": lambda: array_to_pcm(samples, fmt),
        "int16_to_float32": lambda: int16_to_float32(samples),
        "float32_to_int16": lambda: float32_to_int16(floats),
        "numpy astype(float32) (info)": lambda: samples.astype(np.float32),
    }


def bench_conversions(rng: np.random.Generator) -> bool:
    """Conversion throughput against a plain numpy copy of the same bytes, at two sizes.

    The goal is judged at the size the services convert (one segment); the long buffer shows
    the out-of-cache figures.
    """
    fmt = AudioFormat(RATE, 2)
    sizes = [
        (f"{SEGMENT_SECONDS} s segment", SEGMENT_SECONDS, 300),
        (f"{CONVERSION_SECONDS} s buffer", CONVERSION_SECONDS, 30),
    ]
    goal_names = ("pcm_to_array", "array_to_pcm", "int16_to_float32")
    rows: dict[str, list[str]] = {}
    all_ok = True
    for index, (_, seconds, rounds) in enumerate(sizes):
        samples = rng.integers(-32768, 32768, size=(RATE * seconds, 2), dtype=np.int16)
        pcm = samples.tobytes()
        megabytes = len(pcm) / 1e6
        funcs = conversion_cases(pcm, samples, fmt)
        times = best_times(funcs, rounds)
        reference = megabytes / times["numpy copy (reference)"]
        for name, elapsed in times.items():
            rate = megabytes / elapsed
            ratio = rate / reference
            mark = " "
            if name in goal_names:
                mark = "+" if ratio >= CONVERSION_GOAL else "!"
                if index == 0:
                    all_ok = all_ok and ratio >= CONVERSION_GOAL
            rows.setdefault(name, []).append(f"{rate:>10.0f}{ratio:>7.0%}{mark}")
    out("Conversions of 48 kHz stereo S16LE: MB/s of input bytes, and % of a numpy copy of")
    out(f"the same bytes. Goal >= {CONVERSION_GOAL:.0%} at segment size (+ met, ! below).")
    header = "".join(f"{label:>18}" for label, _, _ in sizes)
    out(f"  {'operation':<30}{header}")
    for name, cells in rows.items():
        out(f"  {name:<30}" + "".join(cells))
    return all_ok


def bench_segmentation(rng: np.random.Generator) -> bool:
    """Segmentation and reassembly of 10 minutes of 48 kHz stereo audio."""
    frames = RATE * STREAM_SECONDS
    stream = rng.integers(-32768, 32768, size=(frames, 2), dtype=np.int16)
    per_segment = RATE * SEGMENT_SECONDS
    megabytes = stream.nbytes / 1e6
    out()
    out(
        f"Segmentation: {STREAM_SECONDS // 60} min of {RATE} Hz stereo ({megabytes:.0f} MB) "
        f"in {SEGMENT_SECONDS} s segments"
    )

    segments: list[Segment] = []

    def cut() -> None:  # the whole stream as one chunk: every segment a view of it
        segmenter = Segmenter(per_segment, 2)
        segments[:] = segmenter.feed(stream)
        last = segmenter.flush()
        if last is not None:
            segments.append(last)

    t_cut = best_time(cut)
    zero_copy = all(np.shares_memory(s.samples, stream) for s in segments)
    rebuilt: list[npt.NDArray[Any]] = []

    def rebuild() -> None:
        rebuilt[:] = [np.concatenate([s.samples for s in segments])]

    t_reassemble = best_time(rebuild)
    exact = rebuilt[0].tobytes() == stream.tobytes()
    t_copy = best_time(stream.copy)

    # Live input: 20 ms chunks (960 frames) through the Segmenter.
    chunk = RATE // 50
    live: list[Segment] = []

    def feed_live() -> None:
        segmenter = Segmenter(per_segment, 2)
        result: list[Segment] = []
        for start in range(0, frames, chunk):
            result += segmenter.feed(stream[start : start + chunk])
        last = segmenter.flush()
        if last is not None:
            result.append(last)
        live[:] = result

    t_live = best_time(feed_live, repeats=3)
    live_exact = np.concatenate([s.samples for s in live]).tobytes() == stream.tobytes()
    # One 15 s chunk at a time: segments inside a chunk stay views.
    big = RATE * 15 + 7
    views: list[bool] = []

    def feed_big() -> None:
        segmenter = Segmenter(per_segment, 2)
        shared = []
        for start in range(0, frames, big):
            part = stream[start : start + big]
            shared += [np.shares_memory(s.samples, part) for s in segmenter.feed(part)]
        segmenter.flush()
        views[:] = shared

    t_big = best_time(feed_big, repeats=3)

    out(f"  {'step':<44}{'time':>10}{'vs copy':>10}")
    out(f"  {'numpy copy of the stream (reference)':<44}{t_copy * 1e3:>8.1f}ms{1.0:>10.2f}")
    out(
        f"  {f'Segmenter, one chunk -> {len(segments)} segments':<44}{t_cut * 1e3:>8.2f}ms"
        f"{t_cut / t_copy:>10.4f}"
    )
    out(f"  {'concatenated back':<44}{t_reassemble * 1e3:>8.1f}ms{t_reassemble / t_copy:>10.2f}")
    out(f"  {'Segmenter, 20 ms live chunks':<44}{t_live * 1e3:>8.1f}ms{t_live / t_copy:>10.2f}")
    out(f"  {'Segmenter, 15 s chunks':<44}{t_big * 1e3:>8.1f}ms{t_big / t_copy:>10.2f}")
    out(f"  one chunk, zero-copy (np.shares_memory on every segment): {zero_copy}")
    out(f"  reassembly bit-exact: {exact}; live-chunk reassembly bit-exact: {live_exact}")
    out(
        f"  Segmenter with 15 s chunks: {sum(views)} of {len(views)} segments are views "
        "(the rest straddle two chunks and are assembled)"
    )
    return zero_copy and exact and live_exact


def bench_resampling(rng: np.random.Generator) -> bool:
    """Resampling speed as a multiple of real time (48 kHz -> 16 kHz, mono)."""
    seconds = RESAMPLE_SECONDS
    noise = rng.standard_normal(RATE * seconds).astype(np.float32) * 0.1
    as_int16 = float32_to_int16(noise)
    stereo = np.stack([noise, noise], axis=1)
    out()
    out(f"Resampling {seconds} s of audio, x real time (goal >= {RESAMPLE_GOAL:.0f}x for mono)")
    cases: list[tuple[str, Callable[[], object], bool]] = [
        ("48k -> 16k mono float32 VHQ", lambda: resample(noise, RATE, 16000), True),
        ("48k -> 16k mono int16 VHQ", lambda: resample(as_int16, RATE, 16000), True),
        ("48k -> 16k mono float32 HQ", lambda: resample(noise, RATE, 16000, quality="HQ"), False),
        ("48k -> 16k stereo float32 VHQ", lambda: resample(stereo, RATE, 16000), False),
        (
            "16k -> 48k mono float32 VHQ",
            lambda: resample(noise[: 16000 * seconds], 16000, RATE),
            False,
        ),
        (
            "44.1k -> 16k mono float32 VHQ",
            lambda: resample(noise[: 44100 * seconds], 44100, 16000),
            False,
        ),
    ]
    out(f"  {'conversion':<34}{'time':>10}{'x real time':>14}")
    all_ok = True
    for name, func, goal in cases:
        elapsed = best_time(func, repeats=3)
        factor = seconds / elapsed
        ok = factor >= RESAMPLE_GOAL
        if goal:
            all_ok = all_ok and ok
        out(f"  {name:<34}{elapsed * 1e3:>8.1f}ms{factor:>13.0f}x  {verdict(ok) if goal else ''}")
    return all_ok


def main() -> int:
    """Run every benchmark and print the report.

    Returns 0 even when a speed goal is missed (timings on a shared machine are noisy; the
    report says which goal was missed), and 1 only when a correctness check fails:
    reassembly not bit-exact or segments not zero-copy.
    """
    rng = np.random.default_rng(0)
    out(f"shared_audio benchmarks (numpy {np.__version__}, Python {sys.version.split()[0]})")
    out("best of several runs, time.perf_counter; references measured in the same run")
    out()
    started = time.perf_counter()
    conversions_ok = bench_conversions(rng)
    segmentation_ok = bench_segmentation(rng)
    resampling_ok = bench_resampling(rng)
    out()
    out("Goals:")
    out(
        f"  conversions >= {CONVERSION_GOAL:.0%} of copy at segment size: {verdict(conversions_ok)}"
    )
    out(f"  segmentation zero-copy and reassembly bit-exact: {verdict(segmentation_ok)}")
    out(f"  resampling 48k -> 16k mono >= {RESAMPLE_GOAL:.0f}x real time: {verdict(resampling_ok)}")
    out(f"total {time.perf_counter() - started:.1f} s")
    return 0 if segmentation_ok else 1


if __name__ == "__main__":
    sys.exit(main())
