"""End to end against the real sts-service process, started from its own venv.

Every run checks the promise: as many samples out as in, and original audio wherever a
segment was not dubbed. With the echo backend a dubbed segment equals its original, so the
whole output must equal the input bit for bit in every scenario but wrong-length audio.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from worker_support import parse_summary, read_summary, speech, write_tone

from shared_audio import AudioFormat, read_wav, write_wav
from stream_worker.main import main

SECONDS = 30.0
FRAMES = int(SECONDS * 16000)
#: 9 of the 30 one-second segments (30%), never 5 in a row (which would open the breaker).
FAIL_SEQUENCES = [1, 4, 8, 11, 15, 18, 22, 25, 29]


@pytest.fixture(scope="module")
def wav30(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, npt.NDArray[np.int16]]:
    path = tmp_path_factory.mktemp("audio") / "in30.wav"
    return path, write_tone(path, SECONDS)


def run_in_process(
    wav: Path, out: Path, url: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> dict[str, Any]:
    summary_path = out.with_suffix(".json")
    # These runs pin the fixed 6 s cut (every segment sent), whose counts are known.
    argv = ["-i", str(wav), "-o", str(out), "--sts-url", url, "--require-sts",
            "--segmenter", "fixed", "--summary-json", str(summary_path), "--progress", "never",
            *extra]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    summary = parse_summary(err)
    assert summary == read_summary(summary_path)
    return summary


def worker_command(wav: Path, out: Path, url: str, *extra: str, script: bool = True) -> list[str]:
    """The worker's command line with fixed cuts: its console script, or `python -m`."""
    program = [str(Path(sys.executable).parent / "stream-worker")]
    if not script:
        program = [sys.executable, "-m", "stream_worker"]
    io = ["--input", str(wav), "--output", str(out), "--sts-url", url]
    return [*program, *io, "--segmenter", "fixed", *extra]


def assert_promise(out: Path, original: npt.NDArray[np.int16], summary: dict[str, Any]) -> None:
    _, samples = read_wav(out)
    assert samples.shape == original.shape
    assert summary["input_frames"] == summary["output_frames"] == original.shape[0]
    segments = summary["segments"]
    assert segments["dubbed"] + segments["fallback"] + segments["non_speech"] == segments["total"]
    assert sum(summary["fallbacks"].values()) == segments["fallback"]
    assert len(summary["fallback_sequences"]) == segments["fallback"]


def test_echo_output_equals_input_bit_for_bit(
    wav30: tuple[Path, npt.NDArray[np.int16]],
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav, audio = wav30
    sts = start_sts()
    out = tmp_path / "out.wav"
    summary = run_in_process(wav, out, sts.url, capsys)
    assert_promise(out, audio, summary)
    assert np.array_equal(read_wav(out)[1], audio)
    assert summary["segments"] == {
        "total": 5,
        "dubbed": 5,
        "non_speech": 0,
        "fallback": 0,
        "fitted": 0,
        "retries": 0,
    }


@pytest.mark.slow
def test_default_pause_cuts_keep_every_sample_and_pass_non_speech_through(
    start_sts: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tone "words" between silences; Silero decides what is speech. Whatever it decides, the
    # output is the input (echo), sample for sample, and what was not sent is counted.
    fmt = AudioFormat(16000, 1)
    audio = speech([("p", 2000.0), ("w", 1500.0), ("p", 600.0), ("w", 1200.0), ("p", 2500.0)])
    wav, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(wav, audio, fmt)
    summary_path = out.with_suffix(".json")
    argv = ["-i", str(wav), "-o", str(out), "--sts-url", start_sts().url, "--require-sts",
            "--summary-json", str(summary_path), "--progress", "never"]  # fmt: skip
    assert main(argv) == 0
    summary = parse_summary(capsys.readouterr().err)
    assert summary["segmenter"] == "vad" and summary["output_delay_ms"] is None
    assert np.array_equal(read_wav(out)[1], audio)
    assert summary["input_frames"] == summary["output_frames"] == audio.shape[0]
    segments = summary["segments"]
    assert segments["non_speech"] >= 1 and summary["non_speech_s"] >= 2.0 - 0.2
    assert segments["dubbed"] + segments["non_speech"] == segments["total"]
    assert segments["fallback"] == 0


def test_console_script_against_failing_segments(
    wav30: tuple[Path, npt.NDArray[np.int16]], start_sts: Callable[..., Any], tmp_path: Path
) -> None:
    wav, audio = wav30
    sts = start_sts(
        STS_FAULT_ENABLED="true",
        STS_FAULT_FAIL_SEQUENCES=",".join(map(str, FAIL_SEQUENCES)),
        STS_FAULT_ERROR_CODE="MODEL_ERROR",
    )
    out = tmp_path / "out.wav"
    proc = subprocess.run(
        worker_command(wav, out, sts.url, "--segment-ms", "1000", "--timeout-ms", "2000"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = parse_summary(proc.stderr)
    assert_promise(out, audio, summary)
    assert summary["segments"]["total"] == 30
    assert (
        summary["fallbacks"]["sts_error"] == len(FAIL_SEQUENCES) == summary["segments"]["fallback"]
    )
    assert summary["fallback_sequences"] == FAIL_SEQUENCES
    assert summary["segments"]["retries"] == len(FAIL_SEQUENCES)  # MODEL_ERROR: retried once
    samples = read_wav(out)[1]
    for seq in FAIL_SEQUENCES:  # those segments are the original audio
        part = slice(seq * 16000, (seq + 1) * 16000)
        assert np.array_equal(samples[part], audio[part])
    assert np.array_equal(samples, audio)


@pytest.mark.slow
def test_latency_beyond_the_deadline_falls_back_everywhere(
    wav30: tuple[Path, npt.NDArray[np.int16]],
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav, audio = wav30
    sts = start_sts(STS_FAULT_ENABLED="true", STS_FAULT_LATENCY_MS="2500")
    out = tmp_path / "out.wav"
    started = time.monotonic()
    summary = run_in_process(wav, out, sts.url, capsys, "--timeout-ms", "1000")
    assert time.monotonic() - started < 20  # bounded by the deadlines, not by the service
    assert_promise(out, audio, summary)
    assert summary["segments"]["fallback"] == summary["segments"]["total"] == 5
    assert summary["fallbacks"]["timeout"] == 5
    assert np.array_equal(read_wav(out)[1], audio)


@pytest.mark.parametrize("factor", ["0.5", "1.5"])
def test_wrong_length_audio_is_fitted(
    factor: str,
    wav30: tuple[Path, npt.NDArray[np.int16]],
    start_sts: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav, audio = wav30
    sts = start_sts(STS_FAULT_ENABLED="true", STS_FAULT_LENGTH_FACTOR=factor)
    out = tmp_path / "out.wav"
    summary = run_in_process(wav, out, sts.url, capsys)
    assert_promise(out, audio, summary)
    assert summary["segments"]["dubbed"] == summary["segments"]["fitted"] == 5
    assert summary["segments"]["fallback"] == 0


@pytest.mark.slow
def test_service_killed_halfway_and_restarted(
    start_sts: Callable[..., Any], tmp_path: Path
) -> None:
    # Paced at real time, so input is still arriving when the service comes back. A 16 s
    # clip (32 half-second segments) leaves several seconds of input after the restart even
    # when the restarted service takes 5-6 s to start on a loaded machine.
    wav = tmp_path / "in16.wav"
    audio = write_tone(wav, 16.0)
    sts = start_sts()
    out = tmp_path / "out.wav"
    worker = subprocess.Popen(
        worker_command(
            wav,
            out,
            sts.url,
            "--segment-ms",
            "500",
            "--timeout-ms",
            "1000",
            "--realtime",
            "--breaker-failures",
            "3",
            "--breaker-reset-ms",
            "200",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # kill once the first 4 segments (2 s of audio) are in the output file
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            not out.exists() or out.stat().st_size < 44 + 2 * 32000
        ):
            time.sleep(0.02)
        sts.kill()
        time.sleep(1.0)
        sts.start()  # same port
        _, stderr = worker.communicate(timeout=40)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr[-2000:]
    summary = parse_summary(stderr)
    assert_promise(out, audio, summary)
    assert np.array_equal(read_wav(out)[1], audio)
    assert summary["segments"]["total"] == 32
    fallbacks = summary["fallbacks"]
    assert summary["segments"]["fallback"] > 0  # the outage was noticed...
    assert {k for k, v in fallbacks.items() if v} <= {
        "unreachable",
        "circuit_open",
        "timeout",
        "sts_error",
    }
    assert summary["segments"]["dubbed"] >= 8  # ...before it and after the restart, dubbed
    assert 31 not in summary["fallback_sequences"]  # recovered by the end
    assert min(summary["fallback_sequences"]) >= 3  # nothing failed before the kill


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_a_complete_valid_output(
    signum: signal.Signals, start_sts: Callable[..., Any], tmp_path: Path
) -> None:
    wav = tmp_path / "in.wav"
    audio = write_tone(wav, 10.0)
    sts = start_sts(STS_FAULT_ENABLED="true", STS_FAULT_LATENCY_MS="4000")  # never in time
    out = tmp_path / "out.wav"
    worker = subprocess.Popen(
        worker_command(
            wav,
            out,
            sts.url,
            "--segment-ms",
            "500",
            "--timeout-ms",
            "8000",
            "--realtime",
            "--shutdown-grace-ms",
            "300",
            script=False,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() or worker.poll() is not None):
            time.sleep(0.02)
        time.sleep(1.0)  # a few segments in flight, none answered
        started = time.monotonic()
        worker.send_signal(signum)
        _, stderr = worker.communicate(timeout=10)
        stop_s = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr[-2000:]
    assert stop_s < 5  # grace, not the 8 s deadline
    summary = parse_summary(stderr)
    assert summary["interrupted"] is True
    _, samples = read_wav(out)  # a valid WAV with its final length in the header
    assert 0 < samples.shape[0] == summary["input_frames"] == summary["output_frames"]
    assert samples.shape[0] < audio.shape[0]
    assert np.array_equal(samples, audio[: samples.shape[0]])
    assert summary["fallbacks"]["shutdown"] == summary["segments"]["total"] > 0
