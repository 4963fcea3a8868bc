"""Media files end to end: generated with PyAV, dubbed through the real sts-service (echo).

The echo service returns each segment unchanged, so the dubbed track is the source's audio
after a trip through the service's format; these tests check what the media layer promises:
the video is the input's packet for packet, the dubbed track lasts as long as the video and
starts with it, and fallbacks (faulty service) leave the timing alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from stream_worker.main import main
from stream_worker.sink import WavSink

from shared_audio import AudioFormat, read_wav

#: The longest audio frame of the codecs used (AAC: 1024 samples; at 44.1 kHz, 23.2 ms).
ONE_AUDIO_FRAME_S = 1024 / 44100


def dub(
    src: Path, out: Path, url: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    summary_path = out.with_name(out.name + ".json")
    argv = ["-i", str(src), "-o", str(out), "--sts-url", url, "--progress", "never",
            "--segment-ms", "1000", "--summary-json", str(summary_path), *extra]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return code, summary, err


def assert_in_sync(kit: Any, src: Path, out: Path) -> None:
    """Video untouched; the dubbed track starts with the video and lasts as long.

    "Starts with the video" compares with the input: an AAC source already starts one
    priming frame off its video in containers without edit lists (FLV, MPEG-TS).
    """
    assert [p[0] for p in kit.packets(out, "video")] == [p[0] for p in kit.packets(src, "video")]
    v_start, v_end = kit.stream_span(out, "video")
    a_start, a_end = kit.stream_span(out, "audio")
    src_v_start, _ = kit.stream_span(src, "video")
    src_a_start, src_a_end = kit.stream_span(src, "audio")
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
    kit: Any,
    ext: str,
    rate: int,
    channels: int,
    codec: str,
    echo: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = kit.make_media(tmp_path / f"in.{ext}", 3.0, rate=rate, channels=channels)
    out = tmp_path / f"out.{ext}"
    code, summary, err = dub(src, out, echo.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["input_frames"] == summary["output_frames"] > 0
    assert summary["segments"]["fallback"] == 0
    assert_in_sync(kit, src, out)
    with av.open(str(out)) as result:
        (audio,) = result.streams.audio
        assert audio.codec_context.name == codec
        assert audio.rate == (48000 if codec == "opus" else rate)
        assert audio.channels == channels
    assert summary["output"]["video_packets"] == len(kit.packets(src, "video"))
    assert summary["source"]["sample_rate"] == rate


def test_keep_original_audio_gives_two_tagged_tracks(
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.mp4", 2.0)
    out = tmp_path / "out.mp4"
    code, summary, err = dub(
        src, out, echo.url, capsys, "--keep-original-audio", "--source-lang", "en",
        "--target-lang", "pt-BR",
    )  # fmt: skip
    assert code == 0, err[-2000:]
    with av.open(str(out)) as result:
        tracks = [s.metadata.get("language") for s in result.streams.audio]
    assert tracks == ["por", "eng"]  # ISO 639-2, the form MP4 stores
    original = [p for p in _audio_packets(out, 1)]
    assert original == [p[0] for p in kit.packets(src, "audio")]  # passed through, not re-encoded
    assert_in_sync(kit, src, out)


def _audio_packets(path: Path, index: int) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return [bytes(p) for p in container.demux(stream) if p.size]


def test_faulty_service_falls_back_and_sync_holds(
    kit: Any,
    start_sts: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = start_sts(
        STS_FAULT_ENABLED="true", STS_FAULT_FAIL_SEQUENCES="1,3", STS_FAULT_ERROR_CODE="INVALID_AUDIO"
    )
    src = kit.make_media(tmp_path / "in.ts", 5.0, rate=48000, channels=2)
    out = tmp_path / "out.ts"
    code, summary, err = dub(src, out, sts.url, capsys)
    assert code == 0, err[-2000:]
    assert summary["fallback_sequences"] == [1, 3]
    assert summary["segments"]["fallback"] == 2
    assert_in_sync(kit, src, out)


def test_24_bit_extensible_wav_is_dubbed_at_its_own_format(
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.wav", 2.0, video=False, audio_codec="pcm_s24le")
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
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.mp4", 1.0, audio=False)
    code, _, err = dub(src, tmp_path / "out.mp4", echo.url, capsys)
    assert code == 2
    assert err.strip().endswith("has no audio track (video)")


def test_audio_track_out_of_range_is_a_clear_error(
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.mkv", 1.0, audio_tracks=2)
    code, _, err = dub(src, tmp_path / "out.mkv", echo.url, capsys, "--audio-track", "2")
    assert code == 2 and "has 2 audio track(s); --audio-track 2 does not exist" in err
    code, summary, err = dub(src, tmp_path / "out.mkv", echo.url, capsys, "--audio-track", "1")
    assert code == 0, err[-2000:]


def test_corrupt_file_writes_what_was_read_and_exits_1(
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.mkv", 4.0)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # Matroska declares its duration up front
    out = tmp_path / "out.mkv"
    code, summary, err = dub(cut, out, echo.url, capsys)
    assert code == 1, err[-2000:]
    assert "truncated" in summary["input_error"]
    assert summary["input_frames"] == summary["output_frames"] > 0
    v_start, v_end = kit.stream_span(out, "video")  # finalised and playable
    a_start, a_end = kit.stream_span(out, "audio")
    assert 0.5 < v_end - v_start < 4.0
    assert abs((a_end - a_start) - (v_end - v_start)) <= 0.1


def test_garbage_inside_a_stream_is_skipped_not_fatal(
    kit: Any,
    echo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = kit.make_media(tmp_path / "in.ts", 3.0)
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
