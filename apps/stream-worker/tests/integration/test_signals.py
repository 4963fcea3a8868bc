"""A stop signal at any moment after start gives exit 0 and a valid output file.

The worker runs as its console script, as in production. A process started with ``&`` from
a non-interactive shell inherits SIGINT as ignored (and so would every worker these tests
start), so the harness resets SIGINT to its default in the child.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from worker_support import parse_summary, tone, write_tone

from shared_audio import read_wav

SCRIPT = Path(sys.executable).parent / "stream-worker"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_worker(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SCRIPT), "--progress", "never", *args],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


#: Generous: on a machine shared by several test runs, start-up alone can take many seconds.
STARTUP_S = 90


def finish(worker: subprocess.Popen[bytes], timeout_s: float = STARTUP_S) -> str:
    try:
        _, err = worker.communicate(timeout=timeout_s)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return err.decode(errors="replace")


def catches_stop_signals(pid: int) -> bool:
    """Whether the process has its own SIGINT and SIGTERM handlers yet (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            caught = int(line.split()[1], 16)
            return all(caught >> (signum - 1) & 1 for signum in (signal.SIGINT, signal.SIGTERM))
    return False  # pragma: no cover - every Linux process status has SigCgt


@pytest.fixture
def silent_service() -> Iterator[socket.socket]:
    """A port that accepts connections and never answers (the health check waits 3 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def file_to_file(tmp_path: Path, out: Path) -> list[str]:
    """Options for a run from a new 2 s WAV file to `out`."""
    wav = tmp_path / "in.wav"
    write_tone(wav, 2.0)
    return ["-i", str(wav), "-o", str(out)]


def assert_valid_empty_output(out: Path, err: str) -> None:
    fmt, samples = read_wav(out)
    assert samples.shape == (0, 1) and fmt.sample_rate == 16000
    summary = parse_summary(err)
    assert summary["output_frames"] == 0
    assert "Traceback" not in err


@pytest.mark.parametrize("run", range(3))  # it used to abort in 9 runs of 11
def test_sigint_during_live_stdin_exits_0_with_a_valid_file(
    run: int, tmp_path: Path, closed_port_url: str
) -> None:
    audio = tone(6.0)
    pcm = audio.tobytes()
    out = tmp_path / "out.wav"
    worker = start_worker(
        "--input", "-", "--output", str(out), "--segmenter", "fixed", "--segment-ms", "1000",
        "--sts-url", closed_port_url,
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert worker.stdin is not None
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:  # 640 bytes (20 ms) every 20 ms, like a live source
        assert worker.stdin is not None
        for start in range(0, len(pcm), 640):
            if not feeding.is_set():
                return
            try:
                worker.stdin.write(pcm[start : start + 640])
                worker.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    # The reproduction signalled after 3.5 s; on a busy machine start-up alone can take that
    # long, so wait until a first segment is written: the reader is then surely in a read.
    deadline = time.monotonic() + STARTUP_S
    while not (out.exists() and out.stat().st_size >= 44 + 32000):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.02)
    time.sleep(0.5)
    worker.send_signal(signal.SIGINT)
    try:
        worker.wait(timeout=STARTUP_S)
    finally:
        feeding.clear()
        feeder.join(timeout=5)
    err = finish(worker)
    assert worker.returncode == 0, err[-2000:]
    assert "Fatal Python error" not in err
    summary = parse_summary(err)
    assert summary["interrupted"] is True
    _, samples = read_wav(out)
    assert 0 < samples.shape[0] == summary["input_frames"] == summary["output_frames"]
    assert np.array_equal(samples, audio[: samples.shape[0]])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_imports_gives_an_empty_valid_output(
    signum: signal.Signals, tmp_path: Path, closed_port_url: str
) -> None:
    out = tmp_path / "out.wav"
    worker = start_worker(*file_to_file(tmp_path, out), "--sts-url", closed_port_url)
    deadline = time.monotonic() + STARTUP_S
    while not catches_stop_signals(worker.pid):  # the first thing the console script does
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.001)
    worker.send_signal(signum)
    # the premise: the signal came before the worker got as far as its output
    assert not out.exists()
    err = finish(worker)
    assert worker.returncode == 0, err[-2000:]
    assert_valid_empty_output(out, err)


def test_signal_during_the_health_check_stops_at_once(
    silent_service: socket.socket, tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"
    url = f"http://127.0.0.1:{silent_service.getsockname()[1]}"
    worker = start_worker(*file_to_file(tmp_path, out), "--sts-url", url, "--require-sts")
    silent_service.settimeout(STARTUP_S)
    connection, _ = silent_service.accept()  # the health check is waiting for its answer
    with connection:  # held open and silent until the worker has finished
        worker.send_signal(signal.SIGTERM)
        err = finish(worker)
    assert worker.returncode == 0, err[-2000:]  # not 2: --require-sts never got its answer
    assert "stop requested before sts-service answered its health check" in err
    assert "not reachable" not in err  # abandoned, not timed out
    assert_valid_empty_output(out, err)
