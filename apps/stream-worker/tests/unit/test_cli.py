from __future__ import annotations

import asyncio
import io
import json
import signal
import struct
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from media_support import make_media
from worker_support import FakeSts, failed, parse_summary, speech, tone, write_tone

from shared_audio import read_wav
from shared_utils.contract import DEFAULT_STS_URL, ErrorCode, ProcessRequest
from stream_worker import main as main_module
from stream_worker.client import StsClient
from stream_worker.config import DEFAULT_SEGMENT_MS, WorkerSettings
from stream_worker.main import OPTIONS, UsageError, build_parser, main, parse_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WORKER_"):
            monkeypatch.delenv(name)


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_defaults_follow_the_contract_and_the_production_platform() -> None:
    settings = parse_settings(["--input", "a.wav", "--output", "b.wav"])
    assert settings.sts_url == DEFAULT_STS_URL
    assert settings.segmenter == "vad"
    assert settings.segment_ms == DEFAULT_SEGMENT_MS == 6000
    assert settings.max_inflight == 3
    # The delay budget: longest segment + expected service time + margin = 4 s, and the
    # per-request deadline is the same budget.
    assert settings.budget_delay_ms == 2800 + 900 + 300 == 4000
    assert settings.live_delay_ms == settings.request_timeout_ms == 4000
    fixed = parse_settings(["-i", "a.wav", "-o", "b.wav", "--segmenter", "fixed"])
    assert fixed.live_delay_ms == 6000 + 900 + 300
    assert settings.realtime is False and settings.require_sts is False


def test_an_explicit_timeout_wins_over_the_budget_and_stays_in_the_contract_range() -> None:
    argv = ["-i", "a.wav", "-o", "b.wav"]
    assert parse_settings([*argv, "--timeout-ms", "2500"]).request_timeout_ms == 2500
    short = parse_settings([*argv, "--max-segment-ms", "300", "--min-segment-ms", "200"])
    assert short.request_timeout_ms == 1500  # 300 + 900 + 300
    with pytest.raises(UsageError, match="min_segment_ms 3000 must be below max_segment_ms"):
        parse_settings([*argv, "--min-segment-ms", "3000"])


def test_every_option_has_a_setting_and_every_setting_an_option() -> None:
    assert {o.field for o in OPTIONS} == set(WorkerSettings.model_fields)
    help_text = build_parser().format_help()
    for name in WorkerSettings.env_vars():
        assert name in help_text


def test_each_option_is_derived_from_its_settings_field() -> None:
    for option in OPTIONS:
        info = WorkerSettings.model_fields[option.field]
        assert option.flags[-1] == "--" + option.field.replace("_", "-")
        assert option.help == info.description
    assert [o.flags for o in OPTIONS if len(o.flags) > 1] == [("-i", "--input"), ("-o", "--output")]


def test_a_bad_option_is_named_by_its_flag_even_when_its_variable_is_bad_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_SEGMENT_MS", "abc")
    with pytest.raises(UsageError) as info:
        parse_settings(
            [
                "-i",
                "a.wav",
                "-o",
                "b.wav",
                "--segmenter",
                "fixed",
                "--segment-ms",
                "50",
                "--max-inflight",
                "0",
            ]
        )
    assert str(info.value) == (
        "--segment-ms: Input should be greater than or equal to 100 (got 50); "
        "--max-inflight: Input should be greater than or equal to 1 (got 0)"
    )


def test_the_output_delay_is_judged_against_the_segment_given_with_it() -> None:
    argv = ["-i", "a.ts", "-o", "b.ts", "--segmenter", "fixed", "--segment-ms", "1000"]
    assert parse_settings(argv).live_delay_ms == 1000 + 900 + 300
    assert parse_settings([*argv, "--output-delay-ms", "1500"]).live_delay_ms == 1500
    with pytest.raises(UsageError, match=r"output_delay_ms 1499 is shorter .* \(1500\)"):
        parse_settings([*argv, "--output-delay-ms", "1499"])


def test_settings_come_from_env_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_INPUT", "env.wav")
    monkeypatch.setenv("WORKER_OUTPUT", "-")
    monkeypatch.setenv("WORKER_SEGMENTER", "fixed")
    monkeypatch.setenv("WORKER_SEGMENT_MS", "2000")
    monkeypatch.setenv("WORKER_REALTIME", "true")
    settings = parse_settings(["--segment-ms", "3000", "--no-realtime"])
    assert settings.input == "env.wav" and settings.output == "-"
    assert settings.segment_ms == 3000 and settings.realtime is False
    assert parse_settings([]).segment_ms == 2000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--segment-ms", "2000"], "segment_ms applies to segmenter fixed only"),
        (
            ["--segmenter", "fixed", "--pause-ms", "300", "--max-segment-ms", "4000"],
            "max_segment_ms, pause_ms apply to segmenter vad only",
        ),
    ],
)
def test_an_option_of_the_other_segmenter_is_refused_not_ignored(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_INPUT", "in.wav")
    monkeypatch.setenv("WORKER_OUTPUT", "-")
    with pytest.raises(UsageError, match=message):
        parse_settings(argv)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--segmenter", "fixed", "--segment-ms", "abc"],
            {},
            "argument --segment-ms: invalid int value: 'abc'",
        ),
        (
            ["--segmenter", "fixed", "--segment-ms", "50"],
            {},
            "--segment-ms: Input should be greater than or equal to 100",
        ),
        (
            ["--timeout-ms", "999"],
            {},
            "--timeout-ms: Input should be greater than or equal to 1000",
        ),
        (["--max-inflight", "0"], {}, "--max-inflight: Input should be greater than or equal to 1"),
        (["--sts-url", "ftp://x"], {}, "--sts-url: Value error, must be an http:// or https://"),
        (["--source-lang", "English"], {}, "--source-lang: Value error, must be a language tag"),
        (["--sample-rate", "11025"], {}, "--sample-rate: Value error, 11025 Hz is not supported"),
        (["--channels", "6"], {}, "--channels: Value error, 6 is not supported"),
        (["--stream-id", "bad id!"], {}, "--stream-id: Value error"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        ([], {"WORKER_TIMEOUT_MS": "x"}, "WORKER_TIMEOUT_MS: Input should be a valid integer"),
        (
            [],
            {"WORKER_TIMEOUT": "1"},
            "WORKER_TIMEOUT: unknown variable (did you mean WORKER_TIMEOUT_MS?)",
        ),
        (["--output", "o.wav"], {}, "no input: give --input PATH or --input -"),
        (["--input", "i.wav"], {}, "no output: give --output PATH or --output -"),
    ],
)
def test_invalid_options_and_settings_name_what_is_wrong(
    argv: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    full = (
        argv if "--input" in argv or "--output" in argv else ["-i", "a.wav", "-o", "b.wav", *argv]
    )
    with pytest.raises(UsageError) as info:
        parse_settings(full)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not audio"), "cannot open: Invalid data"),
        (lambda p: p.write_bytes(b""), "cannot open"),
        (lambda p: _odd_chunk_without_pad(p), "odd size (3) but no pad byte"),
        (lambda p: _chunk_past_the_end(p), "running past the end of the file"),
    ],
)
def test_bad_input_files_stop_with_one_line_and_exit_2(
    make: Callable[[Path], object],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    closed_port_url: str,
) -> None:
    path = tmp_path / "in.wav"
    make(path)
    code, err = run_main(
        ["-i", str(path), "-o", str(tmp_path / "o.wav"), "--sts-url", closed_port_url], capsys
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("stream-worker: error: input ")
    assert message in err and str(path) in err
    assert not (tmp_path / "o.wav").exists()


def _wav(path: Path, rate: int = 16000, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * channels * 100)


def _odd_chunk_without_pad(path: Path) -> None:
    _wav(path)
    good = path.read_bytes()  # RIFF header, fmt chunk (36 bytes), then data
    body = good[12:36] + b"LIST" + struct.pack("<I", 3) + b"abc" + good[36:]
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


def _chunk_past_the_end(path: Path) -> None:
    _wav(path)
    good = path.read_bytes()
    body = good[12:36] + b"LIST" + struct.pack("<I", 100000) + good[36:]
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


def _float_wav(path: Path) -> None:
    data = struct.pack("<4f", 0.0, 0.1, -0.1, 0.0)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


@pytest.mark.parametrize(
    ("make", "frames"),
    [
        (lambda p: _float_wav(p), 4),
        (lambda p: _wav(p, rate=11025), -(-100 * 16000 // 11025)),  # the last part-frame counts
        (lambda p: _wav(p, channels=3), 100),
    ],
    ids=["float", "11025-hz", "3-channels"],
)
def test_wavs_the_service_format_cannot_hold_are_resampled_by_ffmpeg(
    make: Callable[[Path], object],
    frames: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _with_fake(monkeypatch, FakeSts())
    src, out = tmp_path / "in.wav", tmp_path / "o.wav"
    make(src)
    code, err = run_main(["-i", str(src), "-o", str(out)], capsys)
    assert code == 0
    summary = parse_summary(err)
    assert summary["sample_rate"] == 16000 and summary["channels"] == 1
    assert summary["input_frames"] == summary["output_frames"] == frames
    fmt, samples = read_wav(out)
    assert (fmt.sample_rate, fmt.channels, samples.shape[0]) == (16000, 1, frames)


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["-i", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.wav")], capsys)
    assert code == 2 and "nope.wav: No such file or directory" in err


def test_missing_input_with_an_existing_output_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.wav"
    out.write_bytes(b"an earlier run")
    code, err = run_main(["-i", str(tmp_path / "nope.wav"), "-o", str(out)], capsys)
    assert code == 2 and "input" in err and "nope.wav: No such file or directory" in err
    assert "writing the output failed" not in err
    assert out.read_bytes() == b"an earlier run"  # untouched


def test_main_as_a_function_leaves_the_callers_signal_handlers_as_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    run_main(["-i", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o.wav")], capsys)
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_output_problems_are_caught_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.wav"
    write_tone(src, 0.1)
    code, err = run_main(["-i", str(src), "-o", str(tmp_path / "missing" / "o.wav")], capsys)
    assert code == 2 and "does not exist" in err
    code, err = run_main(["-i", str(src), "-o", str(src)], capsys)
    assert code == 2 and "is the input file" in err
    code, err = run_main(["-i", str(src), "-o", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


@pytest.mark.parametrize(
    ("given_in", "given_out"),
    [
        ("file:{src}", "{src}"),
        ("{src}", "file:{src}"),
        ("file://{src}", "async:file:{src}"),
        ("{src}", "{link}"),
        ("cache:{src}", "{dir}/./in.wav"),
    ],
)
def test_the_input_is_never_the_output_in_any_url_form(
    given_in: str, given_out: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.wav"
    write_tone(src, 0.1)
    before = src.read_bytes()
    (tmp_path / "link.wav").symlink_to(src)
    names = {"src": str(src), "link": str(tmp_path / "link.wav"), "dir": str(tmp_path)}
    argv = ["-i", given_in.format(**names), "-o", given_out.format(**names)]
    code, err = run_main([*argv, "--sts-url", "http://127.0.0.1:9"], capsys)
    assert code == 2 and "is the input file" in err, err
    assert src.read_bytes() == before


def test_a_file_url_output_is_written_where_it_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.wav"
    write_tone(src, 0.1)
    out = tmp_path / "out.wav"
    code, err = run_main(
        ["-i", f"file:{src}", "-o", f"file:{out}", "--sts-url", "http://127.0.0.1:9"], capsys
    )
    assert code == 0, err
    assert read_wav(out)[1].shape[0] == read_wav(src)[1].shape[0]


def test_require_sts_with_an_unreachable_url_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port_url: str
) -> None:
    src = tmp_path / "in.wav"
    write_tone(src, 0.1)
    url = closed_port_url
    code, err = run_main(
        ["-i", str(src), "-o", str(tmp_path / "o.wav"), "--sts-url", url, "--require-sts"], capsys
    )
    assert code == 2
    assert err.splitlines()[-1].startswith(
        f"stream-worker: error: sts-service at {url}/v1/health is not reachable"
    )
    assert not (tmp_path / "o.wav").exists()


def test_without_require_sts_an_unreachable_service_means_all_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port_url: str
) -> None:
    src, out, summary_path = tmp_path / "in.wav", tmp_path / "o.wav", tmp_path / "s.json"
    audio = write_tone(src, 2.5)
    code, err = run_main(
        [
            "-i",
            str(src),
            "-o",
            str(out),
            "--sts-url",
            closed_port_url,
            "--segmenter",
            "fixed",
            "--segment-ms",
            "1000",
            "--summary-json",
            str(summary_path),
            "--progress",
            "always",
            "--log-format",
            "json",
        ],
        capsys,
    )
    assert code == 0
    summary = parse_summary(err)
    assert summary == json.loads(summary_path.read_text())
    assert summary["segments"]["total"] == 3 and summary["fallbacks"]["unreachable"] == 3
    assert summary["input_frames"] == summary["output_frames"] == 40000
    assert np.array_equal(read_wav(out)[1], audio)
    assert "is not reachable" in err and "dubbing" in err  # warning + progress bar


def _with_fake(monkeypatch: pytest.MonkeyPatch, fake: FakeSts) -> None:
    monkeypatch.setattr(main_module, "StsClient", partial(StsClient, transport=fake.transport()))


def test_raw_stdin_to_stdout_cut_mid_frame(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fake = FakeSts()
    _with_fake(monkeypatch, fake)
    audio = tone(1.7)
    stdin = io.TextIOWrapper(io.BytesIO(audio.tobytes() + b"\x07"))
    monkeypatch.setattr("sys.stdin", stdin)
    code = main(
        [
            "-i",
            "-",
            "-o",
            "-",
            "--sample-rate",
            "16000",
            "--channels",
            "1",
            "--segmenter",
            "fixed",
            "--segment-ms",
            "500",
            "--progress",
            "always",
            "--realtime",
        ]
    )
    captured = capsysbinary.readouterr()
    assert code == 0
    assert captured.out == audio.tobytes()
    summary = parse_summary(captured.err.decode())
    assert summary["trailing_bytes_dropped"] == 1
    assert summary["segments"]["dubbed"] == 4
    assert b"of audio" in captured.err  # the live status line


def test_raw_stdin_to_stdout_with_the_default_pause_cuts(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fake = FakeSts()
    _with_fake(monkeypatch, fake)
    audio = speech([("p", 1500.0), ("w", 1200.0), ("p", 800.0)])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(audio.tobytes())))
    code = main(["-i", "-", "-o", "-", "--progress", "never"])
    captured = capsysbinary.readouterr()
    assert code == 0
    assert captured.out == audio.tobytes()  # every sample, bit-exact where nothing is dubbed
    summary = parse_summary(captured.err.decode())
    assert summary["segmenter"] == "vad"
    assert summary["segments"]["non_speech"] >= 1 and summary["segments"]["fallback"] == 0
    # The first request is the start-up language-pair probe (200 ms of silence); then one per
    # speech segment, and none for the pauses.
    assert len(fake.requests) == 1 + summary["segments"]["dubbed"]


def test_empty_stdin_gives_empty_valid_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_fake(monkeypatch, FakeSts())
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    out = tmp_path / "o.wav"
    code, err = run_main(["-i", "-", "-o", str(out)], capsys)
    assert code == 0
    _, samples = read_wav(out)
    assert samples.shape == (0, 1)
    summary = parse_summary(err)
    assert summary["segments"]["total"] == 0 and summary["real_time_factor"] is None


def test_truncated_wav_is_read_as_far_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_fake(monkeypatch, FakeSts())
    src = tmp_path / "in.wav"
    audio = write_tone(src, 2.0)
    src.write_bytes(src.read_bytes()[: 44 + 2 * 24000])  # 1.5 s of the 2 s declared
    out = tmp_path / "o.wav"
    code, err = run_main(
        ["-i", str(src), "-o", str(out), "--segmenter", "fixed", "--segment-ms", "1000"], capsys
    )
    # FFmpeg sizes a WAV's data by the file itself, so a cut WAV reads as a shorter one.
    assert code == 0
    summary = parse_summary(err)
    assert summary["input_frames"] == summary["output_frames"] == 24000
    _, samples = read_wav(out)
    assert np.array_equal(samples, audio[:24000])


def test_unwritable_summary_path_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_fake(monkeypatch, FakeSts())
    src = tmp_path / "in.wav"
    write_tone(src, 0.2)
    code, err = run_main(
        [
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.wav"),
            "--summary-json",
            str(tmp_path / "no" / "s.json"),
        ],
        capsys,
    )
    assert code == 1 and "cannot write" in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("stream-worker ")


def test_readme_documents_exactly_the_settings_the_code_reads() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(WORKER_[A-Z_]+)`", readme))
    assert documented == set(WorkerSettings.env_vars())
    for option in OPTIONS:
        assert option.flags[-1] in readme, option.flags[-1]
    assert DEFAULT_STS_URL in readme


@pytest.mark.parametrize(
    ("output", "extra", "says"),
    [
        ("out", (), "no container format for the name"),
        ("out.mp4.part", (), "no container format for the name"),
        ("x.mp4", ("--output-format", "nosuch"), "no container format for --output-format"),
        ("/sys/dubbed.mp4", (), "Permission denied"),  # read-only even for root
        ("/sys/dubbed.wav", (), "Permission denied"),
        ("tcp://127.0.0.1:{port}", (), "Connection refused"),
        ("srt://127.0.0.1:{port}", (), "srt:// is not available"),
    ],
)
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(
    output: str,
    extra: tuple[str, ...],
    says: str,
    tmp_path: Path,
    closed_port_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = make_media(tmp_path / "in.ts", 1.0)
    monkeypatch.chdir(tmp_path)
    port = closed_port_url.rsplit(":", 1)[1]
    argv = ["-i", str(src), "-o", output.format(port=port), *extra, "--sts-url", closed_port_url]
    code, err = run_main([*argv, "--log-level", "ERROR"], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("stream-worker: error: output") == 1 and err.count("\n") == 1, err
    assert says in err
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob("x.*"))


def test_an_unavailable_input_protocol_says_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = run_main(["-i", "srt://127.0.0.1:9", "-o", str(tmp_path / "o.mp4")], capsys)
    assert code == 2
    assert "srt:// is not available" in err and err.count("\n") == 1


def _no_french(request: ProcessRequest) -> httpx.Response | None:
    if request.config.target_language == "fr":
        return failed(request, ErrorCode.INVALID_REQUEST)  # as a service without the pair
    return None


@pytest.mark.parametrize(
    ("target", "require", "code", "says"),
    [
        ("fr", True, 2, "refuses this stream"),
        ("fr", False, 0, "EVERY segment will fall back"),
        ("es", True, 0, None),
    ],
)
def test_a_language_pair_the_service_refuses_is_caught_at_start(
    target: str,
    require: bool,
    code: int,
    says: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _with_fake(monkeypatch, FakeSts(behaviour=_no_french))
    src = tmp_path / "in.wav"
    write_tone(src, 1.0)
    argv = ["-i", str(src), "-o", str(tmp_path / "o.wav"), "--target-lang", target]
    got, err = run_main([*argv, *(["--require-sts"] if require else [])], capsys)
    assert got == code, err
    if says is None:
        assert "refuses" not in err
    else:
        assert says in err and "INVALID_REQUEST" in err


def test_a_slow_language_pair_check_does_not_hold_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    send = StsClient.send

    async def slow_probe(
        self: StsClient, sequence_number: int, samples: npt.NDArray[np.int16]
    ) -> object:
        if samples.shape[0] == self.format.frames_for_ms(main_module.PAIR_PROBE_MS):
            await asyncio.sleep(5)  # the probe: a service still loading its models
        return await send(self, sequence_number, samples)

    monkeypatch.setattr(main_module, "PAIR_PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(StsClient, "send", slow_probe)
    _with_fake(monkeypatch, FakeSts())
    src = tmp_path / "in.wav"
    write_tone(src, 1.0)
    argv = ["-i", str(src), "-o", str(tmp_path / "o.wav"), "--log-level", "INFO"]
    code, err = run_main(argv, capsys)
    assert code == 0, err
    assert "language-pair check in time" in err  # given up at the limit, not after 5 s
