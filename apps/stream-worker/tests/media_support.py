"""Hostile media for the tests, made with PyAV: spliced, wrapped, lossless, late-track inputs.

Lives with the tests (tests/conftest.py puts this folder on ``sys.path``).
"""

from __future__ import annotations

import heapq
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.stream import Stream

WIDTH, HEIGHT, FPS = 64, 48, 25
#: The MPEG-TS clock wraps after 2**33 ticks of 90 kHz.
WRAP_S = 2**33 / 90000


def speech_like(seconds: float, rate: int, channels: int) -> npt.NDArray[np.int16]:
    """Voiced 'syllables' (a 140 Hz harmonic stack, 4 per second) with short pauses."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    mono = (voice * envelope * 6000).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono[:, None]


def pattern(index: int) -> npt.NDArray[np.uint8]:
    """A moving test picture (frame ``index``)."""
    x = (np.arange(WIDTH)[None, :] + index * 2) % 256
    y = np.arange(HEIGHT)[:, None]
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[..., 0] = x
    frame[..., 1] = y * 4
    frame[..., 2] = (index * 10) % 256
    return frame


def audio_only(path: Path, seconds: float, codec: str, rate: int = 48000,
               channels: int = 2, sample_format: str = "s16") -> Path:  # fmt: skip
    """An audio-only file of ``seconds`` encoded with ``codec`` (e.g. flac, alac, wavpack)."""
    layout = "mono" if channels == 1 else "stereo"
    out: Any = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=rate, layout=layout)
    stream.format = sample_format
    samples = speech_like(seconds, rate, channels)
    resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
    step = 4096
    for i in range(0, samples.shape[0], step):
        part = np.ascontiguousarray(samples[i : i + step]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts, frame.time_base = i, Fraction(1, rate)
        for converted in resampler.resample(frame):
            out.mux(stream.encode(converted))
    out.mux(stream.encode(None))
    out.close()
    return path


def decoded_seconds(path: Path, kind: str = "audio") -> float:
    """Seconds of decoded ``kind`` in ``path`` (audio: samples / rate; video: frames / fps)."""
    container: Any
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        if kind == "audio":
            return float(sum(f.samples for f in container.decode(stream)) / stream.rate)
        return sum(1 for _ in container.decode(stream)) / FPS


#: The audio codec each test container gets.
AUDIO_CODEC = {"mp4": "aac", "mkv": "libopus", "flv": "aac", "ts": "aac", "mov": "aac"}


def make_media(
    path: Path,
    seconds: float = 3.0,
    *,
    rate: int = 48000,
    channels: int = 2,
    video: bool = True,
    audio: bool = True,
    audio_tracks: int = 1,
    start_s: float = 0.0,
    container_format: str | None = None,
    audio_codec: str | None = None,
    container_options: dict[str, str] | None = None,
    audio_gap: tuple[float, float] | None = None,
    interleaved: bool = False,
    samples: npt.NDArray[np.int16] | None = None,
    layout: str | None = None,
) -> Path:
    """Write a file of ``seconds`` with video (25 fps) and/or audio starting at ``start_s``.

    ``audio_gap`` (from, to) in seconds: no audio there (to past the end: the audio ends early).
    ``samples``: the audio (``(frames, channels)`` at ``rate``) instead of speech-like sound.
    ``layout``: the audio's channel layout (e.g. ``5.1(side)``) instead of mono or stereo.
    """
    ext = path.suffix.lstrip(".")
    out: Any = av.open(str(path), "w", format=container_format, options=container_options or {})
    streams: list[tuple[str, Any]] = []
    if video:
        vs = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": "25"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        streams.append(("video", vs))
    codec = audio_codec or AUDIO_CODEC.get(ext, "aac")
    if layout is None:
        layout = "mono" if channels == 1 else "stereo"
    channels = av.AudioLayout(layout).nb_channels
    for _ in range(audio_tracks if audio else 0):
        ar = 48000 if codec == "libopus" else rate
        streams.append(("audio", out.add_stream(codec, rate=ar, layout=layout)))
    if samples is None:
        samples = speech_like(seconds, rate, channels)

    def frames(kind: str, stream: Stream) -> Iterator[tuple[float, int, Any]]:
        order = id(stream)
        if kind == "video":
            offset = round(start_s * FPS)
            for i in range(round(seconds * FPS)):
                frame = av.VideoFrame.from_ndarray(pattern(i), format="rgb24")
                frame.pts, frame.time_base = offset + i, Fraction(1, FPS)
                yield i / FPS, order, (stream, frame)
        else:
            step = 1024
            offset = round(start_s * rate)
            for i in range(0, samples.shape[0], step):
                if audio_gap is not None and audio_gap[0] <= i / rate < audio_gap[1]:
                    continue  # no audio packets in the gap (the video goes on)
                part = np.ascontiguousarray(samples[i : i + step]).reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
                aframe.sample_rate = rate
                aframe.pts, aframe.time_base = offset + i, Fraction(1, rate)
                yield i / rate, order, (stream, aframe)
        yield float("inf"), order, (stream, None)  # flush the encoder

    per_stream = [frames(kind, stream) for kind, stream in streams]
    # Interleaved by time, as a broadcast muxer writes; or one stream after the other.
    ordered = heapq.merge(*per_stream) if interleaved else itertools.chain(*per_stream)
    for _, _, (stream, frame) in ordered:
        out.mux(stream.encode(frame))
    out.close()
    return path


def packets(path: Path, kind: str) -> list[tuple[bytes, int | None, Fraction | None]]:
    """Every packet of the first stream of ``kind``: bytes, pts, time base."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(bytes(p), p.pts, p.time_base) for p in container.demux(stream) if p.size]


def stream_span(path: Path, kind: str, index: int = 0) -> tuple[float, float]:
    """(start, end) in seconds of the decoded frames of the ``index``-th stream of ``kind``."""
    container: Any
    with av.open(str(path)) as container:
        stream = [s for s in container.streams if s.type == kind][index]
        start = end = None
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.time_base is not None
            t = float(frame.pts * frame.time_base)
            if kind == "audio":
                d = frame.samples / frame.sample_rate
            else:
                d = 1 / float(stream.average_rate or FPS)
            start = t if start is None else min(start, t)
            end = t + d if end is None else max(end, t + d)
        assert start is not None and end is not None
        return start, end


def playable_seconds(path: Path) -> float:
    """Seconds of video a player gets from ``path`` (as far as it decodes; 0 if it cannot).

    A file cut by SIGKILL may end mid-packet or lack its index: decoding stops at the first
    error, and what came before counts.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0.0
    first = last = None
    container: Any
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            try:
                for frame in container.decode(stream):
                    if frame.pts is None or frame.time_base is None:
                        continue
                    t = float(frame.pts * frame.time_base)
                    first = t if first is None else min(first, t)
                    last = t if last is None else max(last, t)
            except (av.error.FFmpegError, EOFError):
                pass
    except (av.error.FFmpegError, IndexError, EOFError):
        return 0.0
    if first is None or last is None:
        return 0.0
    return last - first


def channel_dbfs(path: Path) -> tuple[str, list[float]]:
    """The first audio track's layout and the RMS level of each of its channels, in dBFS."""
    container: Any
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        layout = stream.layout.name
        to_float = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        parts = [
            out.to_ndarray()
            for frame in container.decode(stream)
            for out in to_float.resample(frame)
        ]
    samples = np.concatenate(parts, axis=1).astype(np.float64)
    power = np.mean(samples**2, axis=1)
    return layout, [float(10 * np.log10(p)) if p > 0 else float("-inf") for p in power]


def rms_dbfs(path: Path) -> float:
    """The RMS level of the first audio track of ``path`` over all its channels, in dBFS."""
    _, levels = channel_dbfs(path)
    return float(10 * np.log10(np.mean([10 ** (level / 10) for level in levels])))


def killed_live_run(src: Path, out: Path, sts_url: str, *extra: str) -> int:
    """Run the worker live on `src` (fixed 1 s cuts, 1.5 s delay), SIGKILL it once ~4.5 s of
    media are due at `out`, and return its exit status (-9 when the kill ended it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o", str(out), "--realtime",
         "--sts-url", sts_url, "--segmenter", "fixed", "--segment-ms", "1000",
         "--timeout-ms", "1000", "--output-delay-ms", "1500", "--progress", "never", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(6.0)  # ~4.5 s of media are due at the output by now
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return proc.returncode
