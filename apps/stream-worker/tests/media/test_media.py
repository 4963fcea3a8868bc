"""Media files end to end: generated with PyAV, dubbed through the real sts-service (echo).

The echo service returns each segment unchanged, so the dubbed track is the source's audio
after a trip through the service's format; these tests check what the media layer promises:
the video is the input's packet for packet, the dubbed track lasts as long as the video and
starts with it, and fallbacks (faulty service) leave the timing alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import numpy as np
import pytest
from media_support import (  # tests/ is on sys.path
    WRAP_S,
    channel_dbfs,
    decoded_seconds,
    killed_live_run,
    make_media,
    packets,
    playable_seconds,
    rms_dbfs,
    stream_span,
)
from worker_support import free_port

from shared_audio import AudioFormat, read_wav
from stream_worker import demux as demux_module
from stream_worker.conversions import to_frame, to_samples
from stream_worker.demux import MAX_AUDIO_LAG_S, MediaSource, is_live_url
from stream_worker.languages import iso639_2
from stream_worker.main import main
from stream_worker.media import layout_name, mono_slots
from stream_worker.mux import OUTPUT_LAYOUTS, encoder_rate, output_format, output_layout
from stream_worker.sink import WavSink


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
    sts = root.StsProcess(free_port(), {}, tmp_path_factory.mktemp("sts") / "sts.log")
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


@pytest.mark.parametrize("ext", ["mp4", "mkv", "wav"])
def test_a_stereo_source_falling_back_everywhere_keeps_its_level(
    ext: str, closed_port_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The service is down: every segment is the original audio, through the service's 16 kHz
    # mono. The same sound in both channels comes back at the source's level (FFmpeg's
    # mono->stereo upmix made it 3 dB quieter).
    wav = ext == "wav"
    src = make_media(
        tmp_path / f"in.{ext}", 3.0, channels=2, video=not wav,
        audio_codec="pcm_s16le" if wav else None,
    )  # fmt: skip
    out = tmp_path / f"out.{ext}"
    code, summary, err = dub(src, out, closed_port_url, capsys)
    assert code == 0, err[-2000:]
    assert summary["segments"]["fallback"] == summary["segments"]["total"] > 0
    with av.open(str(out)) as result:
        assert result.streams.audio[0].channels == 2
    assert rms_dbfs(out) == pytest.approx(rms_dbfs(src), abs=0.5)


@pytest.mark.parametrize(
    ("name", "codec", "source_layout", "ext"),
    [
        ("in.ts", "ac3", "5.1(side)", "mkv"),  # broadcast AC-3; Opus takes no 5.1(side)
        ("in.mp4", "aac", "6 channels", "mp4"),  # AAC 5.1(side) in MP4 reads back unordered
        ("in.mkv", "libopus", "5.1", "mp4"),
    ],
)
def test_a_5_1_source_is_written_as_5_1_with_the_dub_in_the_centre(
    name: str,
    codec: str,
    source_layout: str,
    ext: str,
    closed_port_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The same sound in every channel: FFmpeg's downmix to mono then keeps its level.
    layout = "5.1" if source_layout == "5.1" else "5.1(side)"
    src = make_media(tmp_path / name, 2.0, audio_codec=codec, layout=layout)
    assert channel_dbfs(src)[0] == source_layout
    out = tmp_path / f"out.{ext}"
    code, summary, err = dub(src, out, closed_port_url, capsys)
    assert code == 0, err[-2000:]
    assert summary["segments"]["fallback"] == summary["segments"]["total"] > 0
    written, levels = channel_dbfs(out)
    assert written == "5.1"
    centre = levels.pop(2)  # FL FR FC LFE BL BR
    assert centre == pytest.approx(channel_dbfs(src)[1][2], abs=0.5)
    assert all(level < -90 for level in levels), levels


@pytest.mark.parametrize(("codec", "muxer"), [("aac", "mp4"), ("libopus", "matroska")])
def test_every_output_layout_is_one_each_encoder_takes(codec: str, muxer: str) -> None:
    for channels, layout in OUTPUT_LAYOUTS.items():
        assert av.AudioLayout(layout).nb_channels == channels
        assert output_layout(layout) == layout
        container: Any = av.open(io.BytesIO(), "w", format=muxer)
        container.add_stream(codec, rate=48000, layout=layout)
        container.start_encoding()  # raises if the encoder refuses the layout
        container.close()


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
    port = free_port()
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
    port = free_port()
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


# ------------------------------------------------------------------ hostile timestamps, codecs


@pytest.mark.parametrize(
    ("back_s", "ext"), [(0.3, "mp4"), (0.45, "mkv"), (0.04, "ts"), (2.0, "mp4")]
)
def test_a_backward_jump_of_any_size_is_spliced(
    back_s: float, ext: str, echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_media(tmp_path / "one.ts", 3.0)
    second = make_media(tmp_path / "two.ts", 3.0, start_s=3.0 - back_s)
    src = tmp_path / "spliced.ts"
    src.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / f"out.{ext}"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["discontinuities"] >= 1
    assert decoded_seconds(out, "video") == pytest.approx(6.0, abs=0.05)
    # Each half's AAC overhangs its video by up to a frame, and the splice continues after
    # the longer of the two: up to 2 frames of 21 ms and one of video (40 ms) more.
    assert decoded_seconds(out, "audio") == pytest.approx(6.0, abs=0.11)
    assert summary["output"]["video_packets"] == 150


def test_an_mpegts_clock_wrap_into_mp4_loses_nothing(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 6.0, start_s=WRAP_S - 2.7)  # FFmpeg: starts at -2.7 s
    out = tmp_path / "out.mp4"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert decoded_seconds(out, "video") == pytest.approx(6.0, abs=0.05)
    assert decoded_seconds(out, "audio") == pytest.approx(6.0, abs=0.1)
    assert stream_span(out, "video")[0] >= 0
    assert summary["output"]["video_packets"] == 150


@pytest.mark.parametrize("codec", ["flac", "alac", "wavpack"])
def test_the_audio_decoder_is_flushed_at_the_end(
    codec: str, echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 3.0, audio_codec=codec)  # audio is stream 1
    out = tmp_path / "out.mkv"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["input_frames"] == 48000  # 3 s at the service's 16 kHz, to the sample
    assert decoded_seconds(out, "audio") == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize("rate", [192000, 176400])
def test_a_rate_above_what_aac_takes_is_written_at_one_it_takes(
    rate: int, echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 2.0, rate=rate, audio_codec="flac")
    out = tmp_path / "out.mp4"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["output"]["audio_rate"] == 96000
    with av.open(str(out)) as result:
        assert result.streams.audio[0].rate == 96000
    assert decoded_seconds(out, "audio") == pytest.approx(2.0, abs=0.03)


@pytest.mark.parametrize(
    ("codec", "source", "written"),
    [("aac", 44100, 44100), ("aac", 192000, 96000), ("aac", 11000, 11025),
     ("libopus", 44100, 48000), ("libopus", 96000, 48000), ("libopus", 16000, 16000)],
)  # fmt: skip
def test_each_encoder_gets_a_rate_it_supports(codec: str, source: int, written: int) -> None:
    assert encoder_rate(codec, source) == written


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts"])
def test_sigkill_keeps_what_was_written_in_every_container(
    ext: str, echo: Service, tmp_path: Path
) -> None:
    src = make_media(tmp_path / "in.ts", 12.0)
    out = tmp_path / f"out.{ext}"
    assert killed_live_run(src, out, echo.url) == -9
    # At most one segment (1 s) plus what was not yet due is lost.
    assert playable_seconds(out) >= 2.5


def test_an_audio_stamp_wrapped_below_zero_is_not_a_26_hour_jump(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 12.0)  # AAC priming at -21 ms: 2**33 ticks in TS
    with av.open(str(src)) as probe:
        first = next(p for p in probe.demux(probe.streams.audio[0]) if p.dts is not None)
        assert first.dts is not None and first.dts > 2**32  # FFmpeg left it wrapped
    out = tmp_path / "out.mp4"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["discontinuities"] == 0
    assert stream_span(out, "video")[0] < 0.1
    assert stream_span(out, "audio")[0] < 0.1
    assert decoded_seconds(out, "audio") == pytest.approx(decoded_seconds(src), abs=0.03)


@pytest.mark.parametrize("gap", [(2.0, 75.0), (2.0, 1e9)])  # a long gap; audio ending early
def test_video_waiting_for_missing_audio_stays_bounded(
    gap: tuple[float, float], tmp_path: Path
) -> None:
    src = make_media(tmp_path / "in.mkv", 80.0, audio_gap=gap, interleaved=True)
    source = MediaSource(str(src), AudioFormat(16000, 1))
    queue = source.packets
    waiting_most = 0
    read = 0
    for chunk in source:  # a sink takes the video up to where the audio has reached
        read += chunk.shape[0]
        assert source.packets.audio_start_s is not None
        queue.take_until(source.packets.audio_start_s + read / 16000)
        waiting_most = max(waiting_most, len(queue))
    # At most MAX_AUDIO_LAG_S of video waits (and a chunk's worth); never the whole gap.
    assert waiting_most <= (MAX_AUDIO_LAG_S + 2) * 25
    if gap[1] < 80:
        assert read / 16000 == pytest.approx(80.0, abs=0.1)  # the gap is silence, in time


@pytest.mark.parametrize("start_s", [10.0, 1e6])
def test_a_matroska_starting_late_is_not_called_truncated(
    start_s: float, echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 3.0, start_s=start_s)
    out = tmp_path / "out.mkv"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["input_error"] is None
    assert decoded_seconds(out, "video") == pytest.approx(3.0, abs=0.05)


def test_a_ts_jumping_a_minute_ahead_is_not_called_truncated(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_media(tmp_path / "one.ts", 5.0)
    second = make_media(tmp_path / "two.ts", 10.0, start_s=65.0)
    src = tmp_path / "jump.ts"
    src.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out.ts"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["discontinuities"] == 1
    assert decoded_seconds(out, "video") == pytest.approx(15.0, abs=0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_leaves_audio_and_video_aligned(
    signum: int, echo: Service, tmp_path: Path
) -> None:
    src = make_media(tmp_path / "in.mkv", 240.0, interleaved=True)
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen(  # file mode: the reader reads ahead of what is written
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o", str(out),
         "--sts-url", echo.url, "--segmenter", "fixed", "--segment-ms", "1000",
         "--progress", "never",
         "--max-inflight", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    v_start, v_end = stream_span(out, "video")
    _, a_end = stream_span(out, "audio")
    assert 0.5 < v_end - v_start < 239.0  # stopped mid-way
    assert abs(a_end - v_end) <= 0.1  # one video frame (40 ms) and one audio frame apart


def test_an_audio_track_that_starts_after_20_s_of_video_is_dubbed(
    echo: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 25.0, audio_gap=(0.0, 20.0), interleaved=True)
    with av.open(str(src)) as probe:
        assert not probe.streams.audio[0].rate  # FFmpeg's default probe does not see it
    out = tmp_path / "out.mp4"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["source"]["sample_rate"] == 48000
    assert decoded_seconds(out, "video") == pytest.approx(25.0, abs=0.05)
    assert stream_span(out, "audio")[0] == pytest.approx(20.0, abs=0.1)
    assert decoded_seconds(out, "audio") == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("kind", ["fifo", "udp"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_interrupts_an_input_that_never_opens(
    kind: str, signum: int, tmp_path: Path
) -> None:
    if kind == "fifo":  # no writer: open(2) blocks
        target = str(tmp_path / "feed")
        os.mkfifo(target)
    else:  # nothing ever sent: FFmpeg waits for a first packet
        target = f"udp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_worker", "-i", target, "-o", str(tmp_path / "o.mp4"),
         "--sts-url", "http://127.0.0.1:9", "--progress", "never"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.0)  # imports done, blocked in the open
    assert proc.poll() is None
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped while opening the input" in err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("channels", [1, 2])
def test_samples_survive_the_trip_through_a_pyav_frame(channels: int) -> None:
    fmt = AudioFormat(16000, channels)
    samples = (np.arange(960 * channels, dtype=np.int16) - 480).reshape(-1, channels)
    frame = to_frame(samples, fmt)
    assert (frame.sample_rate, frame.layout.name, frame.samples) == (
        16000,
        layout_name(channels),
        960,
    )
    assert np.array_equal(to_samples(frame, channels), samples)


@pytest.mark.parametrize(
    ("layout", "slots"),
    [("stereo", (0, 1)), ("5.1", (2,)), ("5.1(side)", (2,)), ("quad", (0, 1)),
     ("6 channels", (0, 1, 2, 3, 4, 5)), ("mono", (0,))],
)  # fmt: skip
def test_mono_goes_into_a_wider_layout_at_full_level(layout: str, slots: tuple[int, ...]) -> None:
    mono = (np.arange(960, dtype=np.int16) - 480).reshape(-1, 1)
    frame = to_frame(mono, AudioFormat(16000, 1), layout)
    wide = to_samples(frame, frame.layout.nb_channels)
    assert frame.layout.name == layout
    assert mono_slots(layout) == slots
    for channel in range(wide.shape[1]):
        expected = mono[:, 0] if channel in slots else np.zeros(960, dtype=np.int16)
        assert np.array_equal(wide[:, channel], expected), channel


def test_the_pyav_glue_is_written_once() -> None:
    package = Path(__file__).resolve().parents[2] / "stream_worker"
    for module in ("demux.py", "mux.py", "sink.py", "endpoints.py"):
        text = (package / module).read_text()
        assert '"mono" if' not in text and ".to_ndarray()" not in text.replace(
            "frame.to_ndarray()[:, cut:]",
            "",  # cutting a planar frame: no int16 conversion
        ), module


def test_the_stream_description_cannot_change_once_opened(tmp_path: Path) -> None:
    source = MediaSource(str(make_media(tmp_path / "in.mkv", 1.0)), AudioFormat(16000, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.info.source_rate = 8000  # type: ignore[misc]  # what the test checks
    list(source)  # reading changes the hand-over, never the description
    assert source.packets.audio_start_s is not None and source.packets.ended == "end of stream"
    assert source.info.source_rate == 48000


def test_a_live_source_whose_audio_comes_late_is_probed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = make_media(tmp_path / "in.ts", 25.0, audio_gap=(0.0, 20.0), interleaved=True)
    monkeypatch.setattr(demux_module, "is_live_url", lambda target: True)  # as if udp://
    source = MediaSource(str(src), AudioFormat(16000, 1), live=False)
    assert "probing the source for up to" in caplog.text  # the default probe missed it
    assert source.info.source_rate == 48000
    assert sum(chunk.shape[0] for chunk in source) == pytest.approx(5.0 * 16000, abs=1600)
