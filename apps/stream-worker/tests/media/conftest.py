"""Test media made with PyAV: a test-pattern video and speech-like audio, in any container.

The helpers reach the tests through the `kit` fixture (the tests run with pytest's importlib
import mode, where a helper module cannot be imported by name).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
import numpy as np
import numpy.typing as npt

#: The audio codec each test container gets.
AUDIO_CODEC = {"mp4": "aac", "mkv": "libopus", "flv": "aac", "ts": "aac", "mov": "aac"}
WIDTH, HEIGHT, FPS = 64, 48, 25


def speech_like(seconds: float, rate: int, channels: int) -> npt.NDArray[np.int16]:
    """Voiced 'syllables' (a 140 Hz harmonic stack, 4 per second) with short pauses."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    mono = (voice * envelope * 6000).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono[:, None]


def _pattern(index: int) -> npt.NDArray[np.uint8]:
    x = (np.arange(WIDTH)[None, :] + index * 2) % 256
    y = np.arange(HEIGHT)[:, None]
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[..., 0] = x
    frame[..., 1] = y * 4
    frame[..., 2] = (index * 10) % 256
    return frame


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
) -> Path:
    """Write a file of ``seconds`` with video (25 fps) and/or audio starting at ``start_s``."""
    ext = path.suffix.lstrip(".")
    out: Any = av.open(str(path), "w", format=container_format, options=container_options or {})
    streams: list[tuple[str, Any]] = []
    if video:
        vs = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": "25"})
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        streams.append(("video", vs))
    codec = audio_codec or AUDIO_CODEC.get(ext, "aac")
    layout = "mono" if channels == 1 else "stereo"
    for _ in range(audio_tracks if audio else 0):
        ar = 48000 if codec == "libopus" else rate
        streams.append(("audio", out.add_stream(codec, rate=ar, layout=layout)))
    samples = speech_like(seconds, rate, channels)
    for kind, stream in streams:
        if kind == "video":
            tb = Fraction(1, FPS)
            offset = round(start_s * FPS)
            for i in range(round(seconds * FPS)):
                frame = av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")
                frame.pts, frame.time_base = offset + i, tb
                out.mux(stream.encode(frame))
        else:
            step = 1024
            offset = round(start_s * rate)
            for i in range(0, samples.shape[0], step):
                part = np.ascontiguousarray(samples[i : i + step]).reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
                aframe.sample_rate = rate
                aframe.pts, aframe.time_base = offset + i, Fraction(1, rate)
                out.mux(stream.encode(aframe))
        out.mux(stream.encode(None))
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


class MediaKit:
    """The helpers above, for tests."""

    speech_like = staticmethod(speech_like)
    make_media = staticmethod(make_media)
    packets = staticmethod(packets)
    stream_span = staticmethod(stream_span)


@pytest.fixture
def kit() -> MediaKit:
    return MediaKit()


def _root_conftest() -> Any:
    """The package's tests/conftest.py as a module (for its StsProcess and free_port)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_stream_worker_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real sts-service with its echo backends, one per test module (start-up is slow)."""
    root = _root_conftest()
    sts = root.StsProcess(root.free_port(), {}, tmp_path_factory.mktemp("sts") / "sts.log")
    sts.start()
    yield sts
    sts.stop()
