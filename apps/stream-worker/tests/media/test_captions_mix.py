"""Captions and voice-over end to end: media in, the worker's output file and .vtt files out.

The service is `FakeSts` (in process) answering every segment with a dub that speaks only
in a known part of it (a 1 kHz tone from `DUB_FROM` to `DUB_TO` of the segment) and with a
translation and a transcript naming the segment, so where each cue and each duck must fall
in the output is known exactly.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from conftest import StsProcess  # tests/ is on sys.path
from media_support import (  # tests/ is on sys.path
    FPS,
    killed_live_run,
    make_media,
    playable_seconds,
)
from worker_support import FakeSts, free_port

from shared_audio import read_wav, rms_dbfs
from shared_utils.contract import ProcessRequest, ProcessResponse, ProcessStatus
from stream_worker import main as main_module
from stream_worker.captions import Cue, WebVttFile, escape, timestamp
from stream_worker.client import StsClient
from stream_worker.main import main

#: Where the fake dub speaks, as fractions of its segment.
DUB_FROM, DUB_TO = 0.2, 0.4
DUB_HZ, MUSIC_HZ = 1000.0, 300.0
ONE_FRAME_S = 1 / FPS


def _answer(request: ProcessRequest) -> httpx.Response:
    """The segment's dub: a 1 kHz tone from DUB_FROM to DUB_TO of it, silence elsewhere."""
    pcm = base64.b64decode(request.audio.data_base64)
    frames = len(pcm) // 2  # 16 kHz mono S16 (the worker's default service format)
    rate = request.audio.sample_rate_hz
    t = np.arange(frames) / rate
    dub = np.zeros(frames)
    lo, hi = round(frames * DUB_FROM), round(frames * DUB_TO)
    dub[lo:hi] = 0.3 * np.sin(2 * np.pi * DUB_HZ * t[lo:hi])
    body = ProcessResponse(
        fragment_id=request.fragment_id,
        stream_id=request.stream_id,
        sequence_number=request.sequence_number,
        status=ProcessStatus.SUCCESS,
        audio=request.audio.model_copy(
            update={"data_base64": base64.b64encode((dub * 32767).astype("<i2").tobytes()).decode()}
        ),
        transcript=f"hello <{request.sequence_number}>",
        translated_text=f"hola & {request.sequence_number}",
        processing_time_ms=1.0,
    )
    return httpx.Response(200, content=body.model_dump_json())


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSts:
    sts = FakeSts(behaviour=_answer)
    monkeypatch.setattr(main_module, "StsClient", partial(StsClient, transport=sts.transport()))
    return sts


def _run(src: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    summary = out.with_name(out.name + ".json")
    argv = ["-i", str(src), "-o", str(out), "--progress", "never", "--segmenter", "fixed",
            "--summary-json", str(summary), *extra]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    result: dict[str, Any] = json.loads(summary.read_text())
    return result


_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def read_vtt(path: Path) -> list[tuple[float, float, str]]:
    """The cues of a WebVTT file (start, end, text), checking its structure on the way."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\n\n")
    cues: list[tuple[float, float, str]] = []
    for block in text[len("WEBVTT\n\n") :].split("\n\n"):
        if not block:
            continue
        timing, *lines = block.split("\n")
        match = _CUE.match(timing)
        assert match, f"not a cue timing line: {timing!r}"
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        assert start < end and lines and all(lines)
        cues.append((start, end, html.unescape("\n".join(lines))))
    assert text.endswith("\n\n") or text == "WEBVTT\n\n"
    return cues


def subtitle_tracks(path: Path) -> list[dict[str, Any]]:
    """Each subtitle stream: codec, language, and its cues (start, end, text) in seconds."""
    tracks = []
    with av.open(str(path)) as container:
        streams = list(container.streams.subtitles)
        if not streams:
            return []
        cues: dict[int, list[tuple[float, float, str]]] = {s.index: [] for s in streams}
        for packet in container.demux(streams):
            if packet.pts is None or packet.time_base is None or not packet.size:
                continue
            data = bytes(packet)
            codec = packet.stream.codec_context.name
            if codec == "mov_text":
                (length,) = struct.unpack(">H", data[:2])
                data = data[2 : 2 + length]
                if not data:
                    continue  # the muxer's empty sample filling a gap between cues
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            cues[packet.stream.index].append((start, end, data.decode("utf-8")))
        for stream in streams:
            tracks.append(
                {
                    "codec": stream.codec_context.name,
                    "language": stream.metadata.get("language"),
                    "cues": cues[stream.index],
                }
            )
    return tracks


def expected_cues(seconds: float, segment_s: float, text: str) -> list[tuple[float, float, str]]:
    """Where the dub of each segment speaks in the output, with its text."""
    count = round(seconds / segment_s)
    return [
        ((k + DUB_FROM) * segment_s, (k + DUB_TO) * segment_s, text.format(k)) for k in range(count)
    ]


def assert_cues_match(
    got: list[tuple[float, float, str]], want: list[tuple[float, float, str]]
) -> None:
    # The audio overhangs the video by its encoder's last frame: that tail is a segment too.
    tail = got[len(want) :]
    assert all(start >= want[-1][1] and end - start < 0.05 for start, end, _ in tail), tail
    got = got[: len(want)]
    assert [c[2] for c in got] == [c[2] for c in want]
    for (start, end, _), (want_start, want_end, _) in zip(got, want, strict=True):
        assert abs(start - want_start) <= ONE_FRAME_S, (start, want_start)
        assert abs(end - want_end) <= ONE_FRAME_S, (end, want_end)


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "mov_text"), ("mkv", "webvtt")])
def test_captions_in_the_file_and_in_the_output_at_the_dubs_position(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str, codec: str
) -> None:
    src = make_media(tmp_path / f"in.{ext}", 4.0)
    out, vtt, source_vtt = tmp_path / f"out.{ext}", tmp_path / "es.vtt", tmp_path / "en.vtt"
    summary = _run(src, out, capsys, "--segment-ms", "1000", "--captions", str(vtt),
                   "--captions-source", str(source_vtt), "--source-lang", "en",
                   "--target-lang", "fr")  # fmt: skip
    want = expected_cues(4.0, 1.0, "hola & {}")
    assert_cues_match(read_vtt(vtt), want)
    assert "hola &amp; 0" in vtt.read_text()  # escaped in the file, plain once parsed
    for start, end, _ in read_vtt(vtt)[:4]:  # the dub is heard in the output where its cue is
        assert band_dbfs(out, DUB_HZ, start + ONE_FRAME_S, end - ONE_FRAME_S) > -25
        assert band_dbfs(out, DUB_HZ, start - 0.1, start - ONE_FRAME_S) < -50
        assert band_dbfs(out, DUB_HZ, end + ONE_FRAME_S, end + 0.1) < -50
    tracks = subtitle_tracks(out)
    assert [(t["codec"], t["language"]) for t in tracks] == [(codec, "fre"), (codec, "eng")]
    in_track = [(s, e, html.unescape(t)) for s, e, t in tracks[0]["cues"]]
    assert_cues_match(in_track, want)
    # The source transcript is timed on the original speech (speech-like: its voiced span).
    source_cues = read_vtt(source_vtt)
    assert [c[2] for c in source_cues][:4] == [f"hello <{k}>" for k in range(4)]
    assert [html.unescape(c[2]) for c in tracks[1]["cues"]][:4] == [
        f"hello <{k}>" for k in range(4)
    ]
    assert summary["captions"] == {
        "translation": {"path": str(vtt), "cues": len(read_vtt(vtt))},
        "source": {"path": str(source_vtt), "cues": len(source_cues)},
    }
    assert summary["output"]["cues"] == len(read_vtt(vtt)) + len(source_cues)
    assert {"kind": "captions", "language": "fre"} in summary["output"]["tracks"]


def test_captions_follow_a_late_audio_start_and_skip_fallbacks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audio starting at 1.4 s: cues move with it. A failed segment gets no cue."""

    def answer(request: ProcessRequest) -> httpx.Response | None:
        if request.sequence_number == 1 and len(request.audio.data_base64) > 10000:
            return httpx.Response(500, text="boom")
        return _answer(request)

    sts = FakeSts(behaviour=answer)
    monkeypatch.setattr(main_module, "StsClient", partial(StsClient, transport=sts.transport()))
    src = make_media(tmp_path / "in.mkv", 3.0, start_s=1.4)
    out, vtt = tmp_path / "out.mkv", tmp_path / "es.vtt"
    _run(src, out, capsys, "--segment-ms", "1000", "--captions", str(vtt), "--no-caption-tracks")
    want = [(1.4 + s, 1.4 + e, t) for s, e, t in expected_cues(3.0, 1.0, "hola & {}")]
    del want[1]
    assert_cues_match(read_vtt(vtt), want)
    assert subtitle_tracks(out) == []  # --no-caption-tracks: the file only


def test_captions_from_a_wav_and_into_a_container_without_subtitles(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.ts", 2.0)
    out, vtt = tmp_path / "out.ts", tmp_path / "es.vtt"
    summary = _run(src, out, capsys, "--segment-ms", "1000", "--captions", str(vtt))
    assert len(read_vtt(vtt)) >= 2  # MPEG-TS carries no WebVTT here: the file has them
    assert subtitle_tracks(out) == []
    assert summary["output"]["tracks"] == [{"kind": "dubbed", "language": "spa"}]


def test_an_unwritable_captions_file_is_one_line_and_exit_2(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_media(tmp_path / "in.mkv", 1.0)
    bad = tmp_path / "missing" / "es.vtt"
    code = main(["-i", str(src), "-o", str(tmp_path / "out.mkv"), "--captions", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("stream-worker: error: --captions: cannot write ")
    assert str(bad) in err[-1]


def test_the_vtt_file_is_valid_after_every_cue(tmp_path: Path) -> None:
    """What a SIGKILL leaves: the file as it is after any cue is valid WebVTT."""
    path = tmp_path / "live.vtt"
    file = WebVttFile(str(path), "--captions")
    assert read_vtt(path) == []
    for k in range(3):
        file.add(Cue(k + 0.25, k + 0.5, f"cue {k} <b> & more\n\nlines"))
        assert read_vtt(path) == [
            (j + 0.25, j + 0.5, f"cue {j} <b> & more lines") for j in range(k + 1)
        ]
    file.close()
    assert "cue 0 &lt;b&gt; &amp; more lines\n" in path.read_text()
    assert timestamp(100 * 3600 + 1.25) == "100:00:01.250"
    assert escape("-->") == "--&gt;"


# ---------------------------------------------------------------- voice-over


def _music(seconds: float, rate: int, channels: int) -> npt.NDArray[np.int16]:
    """A steady 300 Hz tone at 0.1 of full scale: the 'music' that voice-over keeps."""
    t = np.arange(round(seconds * rate)) / rate
    mono = (0.1 * 32767 * np.sin(2 * np.pi * MUSIC_HZ * t)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def band_dbfs(path: Path, hz: float, start_s: float, end_s: float) -> float:
    """RMS level (dBFS) of the output's dubbed track around ``hz`` between two times."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        decoded = list(container.decode(stream))
    first = decoded[0]
    start_pts = float((first.pts or 0) * first.time_base) if first.time_base else 0.0
    frames = [f.to_ndarray() for f in decoded]
    planar = np.concatenate(frames, axis=1).astype(np.float64)
    mono = planar.mean(axis=0) if planar.shape[0] > 1 else planar[0]
    lo = round((start_s - start_pts) * rate)
    hi = round((end_s - start_pts) * rate)
    window = mono[lo:hi]
    spectrum = np.fft.rfft(window)
    freqs = np.fft.rfftfreq(window.size, 1 / rate)
    spectrum[np.abs(freqs - hz) > 50] = 0
    band = np.fft.irfft(spectrum, window.size)
    return rms_dbfs(band)


@pytest.mark.parametrize(("ext", "channels"), [("mp4", 2), ("mkv", 1)])
def test_voice_over_ducks_the_original_only_while_the_dub_speaks(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str, channels: int
) -> None:
    seconds, segment = 6.0, 2.0
    src = make_media(
        tmp_path / f"in.{ext}", seconds, channels=channels,
        samples=_music(seconds, 48000, channels),
    )  # fmt: skip
    out = tmp_path / f"out.{ext}"
    _run(src, out, capsys, "--segment-ms", "2000", "--mix", "voice-over", "--duck-db", "-15")
    # Full level: the original as the worker writes it when nothing is dubbed (through the
    # service's format and back), measured from a run where every segment falls back.
    fake.behaviour = lambda _: httpx.Response(400, text="no")
    undubbed = tmp_path / f"undubbed.{ext}"
    _run(src, undubbed, capsys, "--segment-ms", "2000", "--mix", "voice-over")
    source_level = band_dbfs(undubbed, MUSIC_HZ, 0.5, 5.5)
    fake.behaviour = _answer
    for k in range(round(seconds / segment)):
        at = k * segment
        # The dub speaks from 0.4 to 0.8 s of each 2 s segment; the duck is complete from
        # its start (look-ahead) and lasts 300 ms after; 1.3-1.9 s is clear of both ramps.
        under = band_dbfs(out, MUSIC_HZ, at + 0.45, at + 0.75)
        outside = band_dbfs(out, MUSIC_HZ, at + 1.3, at + 1.9)
        dub = band_dbfs(out, DUB_HZ, at + 0.45, at + 0.75)
        assert abs(outside - source_level) <= 1.0, (k, outside, source_level)
        assert abs((under - outside) - -15.0) <= 1.5, (k, under, outside)
        assert dub > under + 10  # the dub is on top
    # The default, replace: no original under the dub or outside it.
    replaced = tmp_path / f"replaced.{ext}"
    _run(src, replaced, capsys, "--segment-ms", "2000")
    assert band_dbfs(replaced, MUSIC_HZ, 1.3, 1.9) < source_level - 40


def test_live_captions_reach_the_file_segment_by_segment(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--realtime: each cue is on disk, valid, while the run is still going."""
    src = make_media(tmp_path / "in.mkv", 3.0)
    out, vtt = tmp_path / "out.mkv", tmp_path / "es.vtt"
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if vtt.exists():
                seen.append(len(read_vtt(vtt)))  # valid WebVTT at every look
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = _run(src, out, capsys, "--segment-ms", "1000", "--realtime",
                       "--captions", str(vtt))  # fmt: skip
    finally:
        done.set()
        watcher.join()
    final = read_vtt(vtt)
    assert 1 <= min(n for n in seen if n) < len(final)  # cues came one after the other
    assert_cues_match(final, expected_cues(3.0, 1.0, "hola & {}"))
    assert summary["output_delay_ms"] is not None
    assert_cues_match(
        [(s, e, html.unescape(t)) for s, e, t in subtitle_tracks(out)[0]["cues"]],
        expected_cues(3.0, 1.0, "hola & {}"),
    )


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_a_caption_track_does_not_hold_the_output_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    """Crash safety with a sparse subtitle track: what was written is on disk at once.

    FFmpeg's interleaver waits for a packet of every stream (up to 10 s): with a caption
    track that has none yet, 10 s of audio and video stayed in memory, so a SIGKILL lost them.
    Looked at from inside the service while the worker is still running.
    """
    out, vtt = tmp_path / f"out.{ext}", tmp_path / "es.vtt"
    seen: list[float] = []

    async def answer(request: ProcessRequest) -> httpx.Response:
        if len(request.audio.data_base64) < 10000:  # the language-pair probe
            return _answer(request)
        if request.sequence_number == 12:
            await asyncio.sleep(0.5)  # the writer thread catches up with what it was given
            seen.append(playable_seconds(out))
        if 1 <= request.sequence_number <= 12:  # no cue for a while: the track is sparse
            return httpx.Response(400, text="not this one")
        return _answer(request)

    sts = FakeSts(behaviour=answer)
    monkeypatch.setattr(main_module, "StsClient", partial(StsClient, transport=sts.transport()))
    src = make_media(tmp_path / f"in.{ext}", 16.0)
    _run(src, out, capsys, "--segment-ms", "1000", "--captions", str(vtt))
    assert len(seen) == 1
    assert seen[0] >= 6.0, f"only {seen[0]} s on disk while segment 12 was being dubbed"


def test_captions_and_voice_over_with_a_wav_output(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No container: the cues are in the file, timed from 0; the mix is in the WAV."""
    src = make_media(tmp_path / "in.mkv", 3.0, video=False, samples=_music(3.0, 48000, 2))
    out, vtt = tmp_path / "out.wav", tmp_path / "es.vtt"
    summary = _run(src, out, capsys, "--segment-ms", "1000", "--captions", str(vtt),
                   "--mix", "voice-over", "--duck-db", "-20")  # fmt: skip
    assert_cues_match(read_vtt(vtt), expected_cues(3.0, 1.0, "hola & {}"))
    assert summary["captions"]["translation"]["cues"] == len(read_vtt(vtt))
    fmt, samples = read_wav(out)
    mono = samples.mean(axis=1)
    rate = fmt.sample_rate

    def level(hz: float, start: float, end: float) -> float:
        window = mono[round(start * rate) : round(end * rate)]
        spectrum = np.fft.rfft(window)
        spectrum[np.abs(np.fft.rfftfreq(window.size, 1 / rate) - hz) > 50] = 0
        return rms_dbfs(np.fft.irfft(spectrum, window.size) / 32768)

    # 1 s segments: the dub speaks 0.2-0.4 s; ducked through the hold to 0.7, back by 0.8.
    assert abs(level(MUSIC_HZ, 1.25, 1.35) - level(MUSIC_HZ, 1.85, 1.95) - -20.0) <= 1.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--captions", "{src}"], "--captions {src} is the input; choose another path"),
        (["--captions", "{out}"], "--captions {out} is the output; choose another path"),
        (["--captions", "{dir}/a.vtt", "--captions-source", "{dir}/a.vtt"],
         "--captions-source {dir}/a.vtt is --captions; choose another path"),
    ],
)  # fmt: skip
def test_a_caption_file_never_overwrites_another_file_of_the_run(
    fake: FakeSts, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
    message: str,
) -> None:  # fmt: skip
    src = make_media(tmp_path / "in.mkv", 1.0)
    before = src.read_bytes()
    names = {"src": str(src), "out": str(tmp_path / "out.mkv"), "dir": str(tmp_path)}
    code = main(["-i", str(src), "-o", names["out"], *(a.format(**names) for a in argv)])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"stream-worker: error: {message.format(**names)}"
    )
    assert src.read_bytes() == before


@pytest.fixture(scope="module")
def echo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsProcess]:
    """The real sts-service with its echo backends (its text: ``[es] [echo] ... seq=N``)."""
    sts = StsProcess(free_port(), {}, tmp_path_factory.mktemp("sts") / "sts.log")
    sts.start()
    yield sts
    sts.stop()


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_sigkill_with_caption_tracks_keeps_the_output_and_every_cue_written(
    ext: str, echo_service: StsProcess, tmp_path: Path
) -> None:
    """A live run killed mid-way keeps its output and its cues.

    The output plays as far as without captions; the .vtt is valid and holds the cues of
    what was written.
    """
    src = make_media(tmp_path / "in.ts", 12.0)
    out, vtt = tmp_path / f"out.{ext}", tmp_path / "es.vtt"
    assert killed_live_run(src, out, echo_service.url, "--captions", str(vtt)) == -9
    assert playable_seconds(out) >= 2.5  # the same bound as without a caption track
    cues = read_vtt(vtt)
    assert len(cues) >= 3
    assert all(text.startswith("[es] [echo]") for _, _, text in cues)
