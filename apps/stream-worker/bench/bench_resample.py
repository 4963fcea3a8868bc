"""Benchmark: FFmpeg's resampler (swresample, through PyAV) against soxr, side by side.

The repo resamples in two places: the worker (FFmpeg's, on PyAV frames: the input to the
service's format, the dub back to the encoder's) and sts-service's engines (soxr through
`shared_audio.resample`, on numpy arrays: the request to whisper's 16 kHz, a voice's rate to
the request's). Can one do both? Measured in one run, on the same signals:

* quality: SNR of a sine (440 Hz, 3 kHz and 7 kHz at -6 dBFS) taken 48 kHz -> 16 kHz -> 48 kHz
  with int16 in between (the service's format), the error being whatever is not the sine
  (a least-squares fit at its frequency: no alignment to guess);
* CPU: each job over 60 s of audio, as the code does it (x real time, higher is better):
  - the worker's input: decoded 48 kHz stereo fltp frames of 1024 samples -> 16 kHz mono s16
    (FFmpeg: one call per frame; soxr: frame -> array, downmix, a soxr stream, -> int16);
  - the worker's output: 1 s chunks of 16 kHz mono int16 -> 48 kHz stereo fltp frames;
  - the service's whisper input: a 6 s 48 kHz stereo int16 segment -> 16 kHz mono float32.

Run: `cd apps/stream-worker && .venv/bin/python bench/bench_resample.py` (or `make bench`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # soxr ships no py.typed marker
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from shared_audio import float32_to_int16, int16_to_float32, resample
from stream_worker.conversions import OutputResampler

HIGH, LOW = 48000, 16000
SECONDS = 60
FRAME = 1024
TONES_HZ = (440, 3000, 7000)
LEVEL = 0.5  # -6 dBFS

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int16]


def sine(freq: float, rate: int, seconds: float) -> Floats:
    """A -6 dBFS sine of ``freq`` Hz."""
    t = np.arange(round(rate * seconds)) / rate
    wave: Floats = (LEVEL * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave


def snr_db(signal: npt.NDArray[np.floating], freq: float, rate: int) -> float:
    """The sine at ``freq`` against everything else, over the middle 80% (edges excluded)."""
    n = signal.shape[0]
    part = signal[n // 10 : n - n // 10].astype(np.float64)
    t = (np.arange(part.shape[0]) + n // 10) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, part, rcond=None)
    fit = basis @ coef
    noise = part - fit
    return float(10 * np.log10(np.sum(fit**2) / max(np.sum(noise**2), 1e-30)))


# ----------------------------------------------------------------------- round trips


def ffmpeg_mono(
    samples: Floats, src: int, dst: int, fmt: str, *, taps64: bool = False
) -> npt.NDArray[np.generic]:
    """Mono float samples through one FFmpeg resampler, in 1024-sample frames, flushed.

    PyAV's `AudioResampler` (32 taps), or with ``taps64`` the worker's `OutputResampler`.
    """
    resampler: AudioResampler | OutputResampler = (
        OutputResampler(fmt, "mono", dst) if taps64 else AudioResampler(fmt, "mono", dst)
    )
    parts: list[npt.NDArray[np.generic]] = []
    for start in range(0, samples.shape[0], FRAME):
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[None, start : start + FRAME]), format="fltp", layout="mono"
        )
        frame.sample_rate = src
        parts.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    parts.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(parts)


def round_trip_ffmpeg(wave: Floats) -> Floats:
    """48 kHz to 16 kHz int16 and back through FFmpeg."""
    low = ffmpeg_mono(wave, HIGH, LOW, "s16")  # the service's int16
    back = ffmpeg_mono(int16_to_float32(low.astype(np.int16)), LOW, HIGH, "flt")
    result: Floats = back.astype(np.float32)
    return result


def down_ffmpeg(wave: Floats) -> Floats:
    """48 kHz to 16 kHz int16 through FFmpeg, as float."""
    result: Floats = int16_to_float32(ffmpeg_mono(wave, HIGH, LOW, "s16").astype(np.int16))
    return result


def down_soxr(wave: Floats) -> Floats:
    """48 kHz to 16 kHz int16 through soxr, as float."""
    low: Ints = resample(float32_to_int16(wave)[:, None], HIGH, LOW)
    result: Floats = int16_to_float32(low[:, 0])
    return result


def up_ffmpeg(wave: Floats) -> Floats:
    """16 kHz to 48 kHz float through FFmpeg."""
    result: Floats = ffmpeg_mono(wave, LOW, HIGH, "flt").astype(np.float32)
    return result


def up_ffmpeg64(wave: Floats) -> Floats:
    """16 kHz to 48 kHz float through the worker's output resampler (64 taps)."""
    result: Floats = ffmpeg_mono(wave, LOW, HIGH, "flt", taps64=True).astype(np.float32)
    return result


def up_soxr(wave: Floats) -> Floats:
    """16 kHz to 48 kHz float through soxr."""
    result: Floats = resample(wave, LOW, HIGH)
    return result


def round_trip_soxr(wave: Floats) -> Floats:
    """48 kHz to 16 kHz int16 and back through soxr."""
    low: Ints = resample(float32_to_int16(wave)[:, None], HIGH, LOW)
    back: Floats = resample(int16_to_float32(low), LOW, HIGH)
    return back[:, 0]


# ----------------------------------------------------------------------------- CPU


def cpu_s(job: Callable[[], object], repeat: int = 3) -> float:
    """The least CPU time of ``repeat`` runs of ``job``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        job()
        best = min(best, time.process_time() - start)
    return best


def input_frames() -> list[AudioFrame]:
    """What the worker decodes: 48 kHz stereo fltp frames of 1024 samples."""
    stereo = np.stack([sine(440, HIGH, SECONDS), sine(3000, HIGH, SECONDS)])
    frames = []
    for start in range(0, stereo.shape[1], FRAME):
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo[:, start : start + FRAME]), format="fltp", layout="stereo"
        )
        frame.sample_rate = HIGH
        frames.append(frame)
    return frames


def worker_input_ffmpeg(frames: list[AudioFrame]) -> None:
    """The worker's input job, as it does it (one FFmpeg call per frame)."""
    resampler = AudioResampler(format="s16", layout="mono", rate=LOW)
    for frame in frames:
        for out in resampler.resample(frame):
            out.to_ndarray()
    resampler.resample(None)


def worker_input_soxr(frames: list[AudioFrame]) -> None:
    """The same job through soxr: frame to array, downmix, a soxr stream, int16."""
    stream = soxr.ResampleStream(HIGH, LOW, 1, dtype="float32", quality="VHQ")
    for frame in frames:
        mono = frame.to_ndarray().mean(axis=0, dtype=np.float32)
        float32_to_int16(stream.resample_chunk(mono))
    stream.resample_chunk(np.zeros(0, np.float32), last=True)


def worker_output_chunks() -> list[Ints]:
    """What the worker writes: 1 s chunks of 16 kHz mono int16."""
    mono = float32_to_int16(sine(440, LOW, SECONDS))
    return [mono[i : i + LOW, None] for i in range(0, mono.shape[0], LOW)]


def worker_output_ffmpeg(chunks: list[Ints]) -> None:
    """The worker's output job, as it does it (its 64-tap `OutputResampler`)."""
    resampler = OutputResampler(format="fltp", layout="stereo", rate=HIGH)
    for chunk in chunks:
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(np.repeat(chunk, 2, axis=1)).reshape(1, -1),
            format="s16",
            layout="stereo",
        )
        frame.sample_rate = LOW
        resampler.resample(frame)
    resampler.resample(None)


def worker_output_soxr(chunks: list[Ints]) -> None:
    """The same job through soxr: float, a soxr stream, a stereo fltp frame."""
    stream = soxr.ResampleStream(LOW, HIGH, 1, dtype="float32", quality="VHQ")
    for chunk in chunks:
        high = stream.resample_chunk(int16_to_float32(chunk[:, 0]))
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(np.stack([high, high])), format="fltp", layout="stereo"
        )
        frame.sample_rate = HIGH
    stream.resample_chunk(np.zeros(0, np.float32), last=True)


def segments() -> list[Ints]:
    """Ten 6 s segments of 48 kHz stereo int16 (a request)."""
    stereo = np.stack([sine(440, HIGH, 6), sine(3000, HIGH, 6)], axis=1)
    one = float32_to_int16(stereo)
    return [one] * (SECONDS // 6)


def service_ffmpeg(parts: list[Ints]) -> None:
    """The whisper input job through FFmpeg, one resampler per segment."""
    for segment in parts:
        resampler = AudioResampler(format="flt", layout="mono", rate=LOW)
        frame = AudioFrame.from_ndarray(segment.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = HIGH
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            out.to_ndarray()


def service_soxr(parts: list[Ints]) -> None:
    """The whisper input job as sts-service does it (`shared_audio.resample`)."""
    for segment in parts:
        mono = int16_to_float32(segment).mean(axis=1, dtype=np.float32)
        resample(mono, HIGH, LOW)


def main() -> None:
    """Print both tables."""
    print(f"quality: SNR (dB) of a -6 dBFS sine, {HIGH} -> {LOW} (int16) -> {HIGH} Hz")
    print(f"  {'tone':>8}  {'FFmpeg swresample':>18}  {'soxr VHQ':>9}")
    for freq in TONES_HZ:
        wave = sine(freq, HIGH, 2.0)
        ffmpeg = snr_db(round_trip_ffmpeg(wave), freq, HIGH)
        sox = snr_db(round_trip_soxr(wave), freq, HIGH)
        print(f"  {freq:>6} Hz  {ffmpeg:>18.1f}  {sox:>9.1f}")
    print(f"  one way, at 7000 Hz: {HIGH} -> {LOW} (int16), then {LOW} -> {HIGH} (float)")
    wave_high, wave_low = sine(7000, HIGH, 2.0), sine(7000, LOW, 2.0)
    down = (snr_db(down_ffmpeg(wave_high), 7000, LOW), snr_db(down_soxr(wave_high), 7000, LOW))
    up = (snr_db(up_ffmpeg(wave_low), 7000, HIGH), snr_db(up_soxr(wave_low), 7000, HIGH))
    print(f"  {'down':>8}  {down[0]:>18.1f}  {down[1]:>9.1f}")
    print(f"  {'up':>8}  {up[0]:>18.1f}  {up[1]:>9.1f}")
    worker_up = snr_db(up_ffmpeg64(wave_low), 7000, HIGH)
    print(f"  up with the worker's 64-tap OutputResampler: {worker_up:.1f}")
    frames, chunks, parts = input_frames(), worker_output_chunks(), segments()
    jobs: list[tuple[str, Callable[[Any], None], Callable[[Any], None], object]] = [
        ("worker input (48k stereo fltp -> 16k mono s16)", worker_input_ffmpeg, worker_input_soxr,
         frames),
        ("worker output (16k mono s16 -> 48k stereo fltp, 64 taps)", worker_output_ffmpeg,
         worker_output_soxr, chunks),
        ("service whisper (48k stereo s16 -> 16k mono f32)", service_ffmpeg, service_soxr, parts),
    ]  # fmt: skip
    print(f"CPU over {SECONDS} s of audio, x real time (best of 3)")
    print(f"  {'job':<58}  {'FFmpeg':>8}  {'soxr':>8}")
    for name, ffmpeg_job, soxr_job, data in jobs:
        ffmpeg_s = cpu_s(functools.partial(ffmpeg_job, data))
        soxr_s = cpu_s(functools.partial(soxr_job, data))
        print(f"  {name:<58}  {SECONDS / ffmpeg_s:>7.0f}x  {SECONDS / soxr_s:>7.0f}x")


if __name__ == "__main__":
    main()
