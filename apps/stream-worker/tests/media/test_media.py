"""Media files end to end: generated with PyAV, dubbed through the real sts-service (echo).

The echo service returns each segment unchanged, so the dubbed track is the source's audio
after a trip through the service's format; these tests check what the media layer promises:
the video is the input's packet for packet, the dubbed track lasts as long as the video and
starts with it, and fallbacks (faulty service) leave the timing alone.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import AudioFormat, read_wav
from stream_worker.demux import is_live_url
from stream_worker.languages import iso639_2
from stream_worker.main import main
from stream_worker.mux import output_format
from stream_worker.sink import WavSink

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


class Service(Protocol):
    """A running sts-service."""

    url: str


def _root_conftest() -> Any:  # noqa: ANN401 - a module loaded from its path has no static type
    """The package's tests/conftest.py as a module (for its StsProcess and free_port)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_stream_worker_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real sts-service with its echo backends, one per test module (start-up is slow)."""
    root = _root_conftest()
    sts = root.StsProcess(root.free_port(), {}, tmp_path_factory.mktemp("sts") / "sts.log")
    sts.start()
    yield sts
    sts.stop()


#: The longest audio frame of the codecs used (AAC: 1024 samples; at 44.1 kHz, 23.2 ms).
ONE_AUDIO_FRAME_S = 1024 / 44100


def dub(
    src: Path, out: Path, url: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    summary_path = out.with_name(out.name + ".json")
    argv = ["-i", str(src), "-o", str(out), "--sts-url", url, "--progress", "never",
            "--segmenter", "fixed", "--segment-ms", "1000", "--summary-json", str(summary_path),
            *extra]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return code, summary, err


def assert_in_sync(src: Path, out: Path) -> None:
    """Video untouched; the dubbed track starts with the video and lasts as long.

    "Starts with the video" compares with the input: an AAC source already starts one
    priming frame off its video in containers without edit lists (FLV, MPEG-TS).
    """
    assert [p[0] for p in packets(out, "video")] == [p[0] for p in packets(src, "video")]
    v_start, v_end = stream_span(out, "video")
    a_start, a_end = stream_span(out, "audio")
    src_v_start, _ = stream_span(src, "video")
    src_a_start, src_a_end = stream_span(src, "audio")
    lead = (a_start - v_start) - (src_a_start - src_v_start)
    assert abs(lead) <= ONE_AUDIO_FRAME_S + 1e-3
    assert abs((a_end - a_start) - (src_a_end - src_a_start)) <= ONE_AUDIO_FRAME_S + 1e-6
    # The generated source's own audio overhangs its video by its encoder's priming and last
    # partial frame; the dub may differ from the video by that and one audio frame, no more.
    overhang = abs((src_a_end - src_a_start) - (v_end - v_start))
    assert abs((a_end - a_start) - (v_end - v_start)) <= overhang + ONE_AUDIO_FRAME_S


@pytest.mark.parametrize(
    ("ext", "rate", "channels", "codec"),
    [
        ("mp4", 48000, 2, "aac"),
        ("mkv", 48000, 1, "opus"),
        ("flv", 44100, 2, "aac"),
        ("ts", 44100, 1, "aac"),
    ],
)
def test_each_container_keeps_its_video_and_gets_the_dub_in_sync(
    ext: str,
    rate: int,
    channels: int,
    codec: str,
    echo: Service,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = make_media(tmp_path / f"in.{ext}", 3.0, rate=rate, channels=channels)
    out = tmp_path / f"out.{ext}"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["input_frames"] == summary["output_frames"] > 0
    assert summary["segments"]["fallback"] == 0
    assert_in_sync(src, out)
    with av.open(str(out)) as result:
        (audio,) = result.streams.audio
        assert audio.codec_context.name == codec
        assert audio.rate == (48000 if codec == "opus" else rate)
        assert audio.channels == channels
    assert summary["output"]["video_packets"] == len(packets(src, "video"))
    assert summary["source"]["sample_rate"] == rate


def test_keep_original_audio_gives_two_tagged_tracks(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mp4", 2.0)
    out = tmp_path / "out.mp4"
    code, _, err = dub(
        src, out, echo.url, capsys, "--keep-original-audio", "--source-lang", "en",
        "--target-lang", "pt-BR",
    )  # fmt: skip
    assert code == 0, err[-2000:]
    with av.open(str(out)) as result:
        tracks = [s.metadata.get("language") for s in result.streams.audio]
    assert tracks == ["por", "eng"]  # ISO 639-2, the form MP4 stores
    original = _audio_packets(out, 1)
    assert original == [p[0] for p in packets(src, "audio")]  # passed through, not re-encoded
    assert_in_sync(src, out)


def _audio_packets(path: Path, index: int) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return [bytes(p) for p in container.demux(stream) if p.size]


def test_faulty_service_falls_back_and_sync_holds(
    start_sts: Callable[..., Service], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = start_sts(
        STS_FAULT_ENABLED="true",
        STS_FAULT_FAIL_SEQUENCES="1,3",
        STS_FAULT_ERROR_CODE="INVALID_AUDIO",
    )
    src = make_media(tmp_path / "in.ts", 5.0, rate=48000, channels=2)
    out = tmp_path / "out.ts"
    code, summary, err = dub(src, out, sts.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["fallback_sequences"] == [1, 3]
    assert summary["segments"]["fallback"] == 2
    assert_in_sync(src, out)


def test_24_bit_extensible_wav_is_dubbed_at_its_own_format(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.wav", 2.0, video=False, audio_codec="pcm_s24le")
    header = src.read_bytes()[:64]
    assert header[20:22] == b"\xfe\xff"  # WAVE_FORMAT_EXTENSIBLE, which `wave` cannot read
    out = tmp_path / "out.wav"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    fmt, samples = read_wav(out)
    assert fmt == AudioFormat(48000, 2)
    assert abs(samples.shape[0] - 96000) <= 1024
    assert summary["input_frames"] == summary["output_frames"] == 32000  # 16 kHz to the service


def test_no_audio_track_is_a_clear_error(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mp4", 1.0, audio=False)
    code, _, err = dub(src, tmp_path / "out.mp4", echo.url, capsys)
    assert code == 2
    assert err.strip().endswith("has no audio track (video)")


def test_audio_track_out_of_range_is_a_clear_error(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 1.0, audio_tracks=2)
    code, _, err = dub(src, tmp_path / "out.mkv", echo.url, capsys, "--audio-track", "2")
    assert code == 2 and "has 2 audio track(s); --audio-track 2 does not exist" in err
    code, _, err = dub(src, tmp_path / "out.mkv", echo.url, capsys, "--audio-track", "1")
    assert code == 0, err[-2000:]


def test_corrupt_file_writes_what_was_read_and_exits_1(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 4.0)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # Matroska declares its duration up front
    out = tmp_path / "out.mkv"
    code, summary, err = dub(cut, out, echo.url, capsys)
    assert code == 1, err[-2000:]
    assert "truncated" in summary["input_error"]
    assert summary["input_frames"] == summary["output_frames"] > 0
    v_start, v_end = stream_span(out, "video")  # finalised and playable
    a_start, a_end = stream_span(out, "audio")
    assert 0.5 < v_end - v_start < 4.0
    assert abs((a_end - a_start) - (v_end - v_start)) <= 0.1


def test_garbage_inside_a_stream_is_skipped_not_fatal(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 3.0)
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(4000)  # a burst of damage mid-stream
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.ts"
    code, summary, err = dub(bad, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["input_frames"] == summary["output_frames"] > 0


def test_wav_output_rolls_over_at_the_riff_limit(tmp_path: Path) -> None:
    fmt = AudioFormat(16000, 1)
    sink = WavSink(str(tmp_path / "big.wav"), fmt, max_data_bytes=2 * 1000)
    audio = (np.arange(2500, dtype=np.int16) % 100)[:, None]
    sink.write(audio[:700])
    sink.write(audio[700:])
    sink.close()
    assert sink.paths == [str(tmp_path / p) for p in ("big.wav", "big.001.wav", "big.002.wav")]
    parts = [read_wav(p)[1] for p in sink.paths]
    assert [p.shape[0] for p in parts] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate(parts), audio)


# ------------------------------------------------------------------ timestamps


def test_a_late_start_keeps_its_timestamps(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 2.0, start_s=10.0)
    out = tmp_path / "out.ts"
    code, _, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert [p[1] for p in packets(out, "video")] == [p[1] for p in packets(src, "video")]
    assert stream_span(out, "video")[0] == pytest.approx(10.0, abs=0.1)
    assert_in_sync(src, out)


def test_a_reconnect_that_restarts_the_clock_is_spliced(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = make_media(tmp_path / "one.ts", 2.0)
    src = tmp_path / "twice.ts"
    src.write_bytes(one.read_bytes() * 2)  # the second half starts at 0 again
    out = tmp_path / "out.ts"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["discontinuities"] >= 1
    v_start, v_end = stream_span(out, "video")
    a_start, a_end = stream_span(out, "audio")
    assert v_end - v_start == pytest.approx(4.0, abs=0.1)
    assert a_end - a_start == pytest.approx(v_end - v_start, abs=0.1)
    stamps = [p[1] or 0 for p in packets(out, "video")]
    assert stamps == sorted(stamps)  # one continuous timeline


def test_an_mpegts_clock_wrap_is_unwrapped(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrap_s = 2**33 / 90000
    src = make_media(tmp_path / "in.ts", 3.0, start_s=wrap_s - 1.5)  # wraps 1.5 s in
    out = tmp_path / "out.ts"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["discontinuities"] == 0
    v_start, v_end = stream_span(out, "video")
    a_start, a_end = stream_span(out, "audio")
    assert v_end - v_start == pytest.approx(3.0, abs=0.1)
    assert a_end - a_start == pytest.approx(3.0, abs=0.1)
    assert [p[0] for p in packets(out, "video")] == [p[0] for p in packets(src, "video")]


# ------------------------------------------------------------------ live


@pytest.mark.slow
def test_live_mpegts_over_tcp_stays_in_sync_and_survives_the_source_dropping(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seconds, delay_s = 4.0, 2.0
    src = make_media(tmp_path / "in.ts", seconds)
    data = src.read_bytes()
    port = _root_conftest().free_port()
    out = tmp_path / "out.ts"
    result: dict[str, Any] = {}

    def worker() -> None:
        result["code"] = main(
            [
                "-i",
                f"tcp://127.0.0.1:{port}?listen=1",
                "-o",
                str(out),
                "--sts-url",
                echo.url,
                "--progress",
                "never",
                "--segmenter",
                "fixed",
                "--segment-ms",
                "500",
                "--timeout-ms",
                "1000",
                "--output-delay-ms",
                str(int(delay_s * 1000)),
                "--read-timeout-ms",
                "1000",
                "--summary-json",
                str(tmp_path / "summary.json"),
            ]
        )

    thread = threading.Thread(target=worker)
    thread.start()
    sock = _connect(port)
    started = time.monotonic()
    try:
        pieces = 40
        for i in range(pieces):  # a live sender: the bytes come at the media's own pace
            sock.sendall(data[i * len(data) // pieces : (i + 1) * len(data) // pieces])
            time.sleep(seconds / pieces)
        thread.join(timeout=20)  # the connection stays open but silent: the source dropped
        elapsed = time.monotonic() - started
    finally:
        sock.close()
        thread.join(timeout=10)
    assert not thread.is_alive()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result["code"] == 1, capsys.readouterr().err[-2000:]
    assert "stopped sending" in summary["input_error"]
    assert summary["source"]["ended"].startswith("dropped")
    assert summary["source"]["live"] is True
    assert summary["output"]["delay_s"] == delay_s
    assert summary["output"]["audio_behind_s"] == 0.0  # every slot had its audio in time
    assert seconds <= elapsed < seconds + delay_s + 5  # paced, and bounded
    assert_in_sync(src, out)
    stamps = [p[1] for p in _audio_packets_timed(out)]
    steps = {b - a for a, b in itertools.pairwise(stamps)}
    assert len(steps) == 1  # continuous: one frame after the other, no gap, no overlap


def _connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 15
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _audio_packets_timed(path: Path) -> list[tuple[bytes, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [
            (bytes(p), int(p.pts)) for p in container.demux(stream) if p.size and p.pts is not None
        ]


# ------------------------------------------------------------------ pipes and small parts


def test_a_container_on_stdout_feeds_a_pipe(echo: Service, tmp_path: Path) -> None:
    src = make_media(tmp_path / "in.mp4", 2.0)
    proc = subprocess.run(
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o", "-", "--output-format",
         "mpegts", "--sts-url", echo.url, "--segmenter", "fixed", "--segment-ms", "1000",
         "--progress", "never"],
        capture_output=True, check=False, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "piped.ts"
    out.write_bytes(proc.stdout)
    with av.open(str(out)) as result:
        assert [s.type for s in result.streams] == ["video", "audio"]
    v_start, v_end = stream_span(out, "video")
    a_start, a_end = stream_span(out, "audio")
    assert abs((a_end - a_start) - (v_end - v_start)) <= 3 * ONE_AUDIO_FRAME_S


def test_raw_stdin_cannot_become_a_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", "-", "-o", str(tmp_path / "out.mp4"), "--sts-url", "http://127.0.0.1:9"])
    assert code == 2
    assert "raw PCM from stdin has no container to copy" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("tag", "code"),
    [("es", "spa"), ("pt-BR", "por"), ("zh-Hant", "chi"), ("deu", "deu"), ("x1", "und")],
)
def test_language_tags_become_iso_639_2(tag: str, code: str) -> None:
    assert iso639_2(tag) == code


@pytest.mark.parametrize(
    ("target", "explicit", "expected"),
    [
        ("rtmp://cdn/live/key", None, "flv"),
        ("srt://host:9000", None, "mpegts"),
        ("udp://127.0.0.1:5000", None, "mpegts"),
        ("out.mkv", None, None),
        ("-", "matroska", "matroska"),
    ],
)
def test_live_destinations_get_their_muxer(
    target: str, explicit: str | None, expected: str | None
) -> None:
    assert output_format(target, explicit) == expected
    assert is_live_url(target) == ("://" in target)


@pytest.mark.slow
def test_live_output_over_udp_reaches_a_receiver(echo: Service, tmp_path: Path) -> None:
    src = make_media(tmp_path / "in.ts", 3.0)
    port = _root_conftest().free_port()
    received: dict[str, int] = {"video": 0, "audio": 0}

    def receive() -> None:
        with av.open(f"udp://127.0.0.1:{port}", timeout=(30, 3)) as container:
            try:
                for packet in container.demux():
                    if packet.size:
                        received[packet.stream.type] += 1
            except av.error.ExitError:  # nothing more for 3 s: the sender is done
                pass

    receiver = threading.Thread(target=receive)
    receiver.start()
    proc = subprocess.run(
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o",
         f"udp://127.0.0.1:{port}?pkt_size=1316", "--realtime", "--sts-url", echo.url,
         "--segmenter", "fixed", "--segment-ms", "1000", "--timeout-ms", "1000",
         "--output-delay-ms", "2500", "--progress", "never"],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    receiver.join(timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert received["video"] == len(packets(src, "video"))
    assert received["audio"] >= 3.0 * 48000 / 1024
