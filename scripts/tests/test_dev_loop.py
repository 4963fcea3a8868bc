"""The dev loop end to end: make dev-local, make demo, make dev without an engine.

These start real processes from the package venvs, on free ports, so they never collide with a
dev stack that is already running. They fail (never skip) when `make install` was not run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from scaffold import REPO, outside_make_env, package_venv_python, run

sys.path.insert(0, str(REPO / "scripts"))  # the dev scripts are plain modules (stdlib only)

from dev_sample import write_sample
from devproc import HEALTH_PATH, free_port, read_env_file

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


def _make_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in outside_make_env().items() if not k.startswith(("STS_", "WORKER_", "DEV_"))
    }
    return {**env, **extra}


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(f"{cmdline.parent.name}: {text}")
    return found


def _start_reading(
    command: list[str],
    env: dict[str, str],
    *,
    start_new_session: bool = False,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    """Start `command` in the repo; a thread collects its output lines until it ends."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=start_new_session,
        preexec_fn=preexec_fn,
    )
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        with stdout:
            lines.extend(stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return process, lines, reader


def _summaries(lines: list[str]) -> list[dict[str, object]]:
    found = []
    for line in lines:
        _, sep, rest = line.partition("| ")
        if sep and rest.startswith('{"event":"summary"'):
            found.append(json.loads(rest))
    return found


def test_dev_local_runs_both_services_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    package_venv_python("apps/sts-service")
    package_venv_python("apps/stream-worker")
    port = free_port()
    workdir = tmp_path / "dev-local-work"
    env = _make_env(STS_PORT=str(port), DEV_SAMPLE_SECONDS="2", WORKER_SEGMENT_MS="1000")
    process, lines, reader = _start_reading(
        ["make", "--no-print-directory", "dev-local", f"DEV_LOCAL_ARGS=--workdir {workdir}"],
        env,
        start_new_session=True,  # a process group of its own: SIGINT to it is a Ctrl-C
    )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        summaries: list[dict[str, object]] = []
        while time.monotonic() < deadline and process.poll() is None:
            healthy = healthy or _healthy(port)
            summaries = _summaries(list(lines))
            if healthy and summaries:
                break
            time.sleep(0.2)
        output = "\n".join(lines)
        assert process.poll() is None, f"make dev-local exited early:\n{output}"
        assert healthy, f"sts-service never answered {HEALTH_PATH} on {port}:\n{output}"
        assert summaries, f"stream-worker finished no pass:\n{output}"
        segments = summaries[0]["segments"]
        assert isinstance(segments, dict)
        assert segments["dubbed"] == segments["total"] > 0, summaries[0]
        assert summaries[0]["sts_url"] == f"http://127.0.0.1:{port}"
        with wave.open(str(workdir / "dubbed.wav"), "rb") as dubbed:
            assert dubbed.getnframes() == 2 * 16000
        prefixes = {line.split("|", 1)[0].strip() for line in lines if "|" in line}
        assert {"sts-service", "stream-worker", "dev-local"} <= prefixes, prefixes
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        reader.join(timeout=5)
    output = "\n".join(lines)
    # make itself always dies of the SIGINT it was sent (as after a terminal Ctrl-C), even
    # when its recipe exits 0; the supervisor's own clean stop is its last line.
    assert status in (0, -signal.SIGINT), f"exit {status}:\n{output}"
    assert "stopped: sts-service and stream-worker are down" in output, output
    assert "Traceback" not in output, output
    assert "killed" not in output, f"a service had to be killed:\n{output}"
    assert not _listening(port), f"something still listens on {port}"
    assert not _processes_mentioning(str(workdir)), "a worker process was left behind"


def test_dev_local_refuses_a_taken_port(tmp_path: Path) -> None:
    package_venv_python("apps/sts-service")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            ["make", "dev-local", f"DEV_LOCAL_ARGS=--workdir {tmp_path}"],
            cwd=REPO,
            env=_make_env(STS_PORT=str(port)),
            timeout=60,
        )
    assert result.returncode != 0
    assert f"already listens on 127.0.0.1:{port}" in result.output, result.output


def test_make_demo_dubs_a_sample_and_stops(tmp_path: Path) -> None:
    package_venv_python("apps/sts-service")
    package_venv_python("apps/stream-worker")
    result = run(
        ["make", "demo", f"DEMO_ARGS=--workdir {tmp_path}"],
        cwd=REPO,
        env=_make_env(WORKER_SEGMENT_MS="not-a-number"),  # the demo ignores the caller's config
        timeout=120,
    )
    assert result.returncode == 0, result.output
    assert "demo: OK, dubbed output produced" in result.output
    assert f"output       {tmp_path / 'dubbed.wav'}" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["segments"]["fallback"] == 0 < summary["segments"]["dubbed"]
    with wave.open(str(tmp_path / "dubbed.wav"), "rb") as dubbed:
        assert dubbed.getnframes() == summary["input_frames"] == 10 * 16000
    port = int(str(summary["sts_url"]).rsplit(":", 1)[1])
    assert not _listening(port), "sts-service was left running"


@pytest.mark.parametrize("target", ["dev", "stop", "logs"])
def test_make_dev_without_an_engine_says_so_in_one_line(target: str) -> None:
    env = _make_env(DOCKER_HOST="unix:///nonexistent/docker.sock")
    result = run(["make", target], cwd=REPO, env=env, timeout=60)
    assert result.returncode != 0
    ours = [line for line in result.output.splitlines() if not line.startswith("make: ***")]
    assert len(ours) == 1, result.output
    assert "make dev-local" in ours[0] and ("Docker" in ours[0] or "docker" in ours[0])


def test_sample_is_speech_like(tmp_path: Path) -> None:
    path = write_sample(tmp_path / "s.wav", seconds=3.0, rate=16000)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        frames = wav.readframes(wav.getnframes())
    samples = memoryview(frames).cast("h")
    assert len(samples) == 3 * 16000
    window = 1600  # 100 ms
    peaks = [max(map(abs, samples[i : i + window])) for i in range(0, len(samples), window)]
    assert max(peaks) > 8000, "no loud part"
    assert min(peaks) < 2000, "no pause"
    assert sum(peak > 4000 for peak in peaks) >= len(peaks) // 3, "mostly silence"
    assert write_sample(tmp_path / "again.wav", 3.0).read_bytes() == path.read_bytes()


def test_env_example_parses_like_compose_env_files() -> None:
    env = read_env_file(REPO / ".env.example")
    assert env["STS_PORT"].isdigit()
    assert all(key.isupper() for key in env)


def _processes_with_env(entry: str) -> list[str]:
    """Processes whose environment holds `entry` (e.g. ``STS_PORT=40123``)."""
    found = []
    needle = b"\0" + entry.encode() + b"\0"
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in b"\0" + environ.read_bytes():
                found.append(environ.parent.name)
        except OSError:
            continue
    return found


def _default_sigint() -> None:
    # A process started in the background by a non-interactive shell inherits SIGINT as
    # ignored; a terminal's Ctrl-C reaches a process whose SIGINT is at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_when(
    command: list[str], marker: str, signum: signal.Signals, env: dict[str, str]
) -> tuple[int, str]:
    """Start `command`, send `signum` once `marker` is printed; (exit status, output)."""
    process, lines, reader = _start_reading(command, env, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(marker in line for line in lines):
            assert process.poll() is None, "".join(lines)
            time.sleep(0.05)
        assert any(marker in line for line in lines), "".join(lines)
        process.send_signal(signum)
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
    return status, "".join(lines)


@pytest.mark.parametrize(
    ("signum", "marker"),
    [
        (signal.SIGTERM, "3/4 dubbing"),  # both services running
        (signal.SIGINT, "1/4 starting"),  # Ctrl-C while sts-service starts
        (signal.SIGHUP, "3/4 dubbing"),  # the terminal was closed
    ],
    ids=["SIGTERM-while-dubbing", "SIGINT-while-starting", "SIGHUP-while-dubbing"],
)
def test_a_signal_stops_the_demo_and_everything_it_started_quietly(
    tmp_path: Path, signum: signal.Signals, marker: str
) -> None:
    package_venv_python("apps/sts-service")
    package_venv_python("apps/stream-worker")
    command = [sys.executable, "scripts/demo.py", "--workdir", str(tmp_path)]
    status, output = _signal_when(command, marker, signum, _make_env())
    assert status == 128 + signum, output
    assert f"demo: stopped by {signum.name}" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "killed" not in output, f"a service had to be killed:\n{output}"
    port = output.split("starting sts-service on http://127.0.0.1:", 1)[1].split()[0]
    assert not _listening(int(port)), "sts-service was left running"
    assert not _processes_with_env(f"STS_PORT={port}"), "sts-service was left running"
    assert not _processes_mentioning(str(tmp_path)), "stream-worker was left running"


@pytest.mark.parametrize(
    ("signum", "marker"),
    [
        (signal.SIGTERM, "starting stream-worker"),  # both services running
        (signal.SIGINT, "sts-service   |"),  # Ctrl-C before stream-worker starts
    ],
    ids=["SIGTERM-both-running", "SIGINT-while-starting"],
)
def test_a_signal_stops_dev_local_and_everything_it_started_quietly(
    tmp_path: Path, signum: signal.Signals, marker: str
) -> None:
    package_venv_python("apps/sts-service")
    package_venv_python("apps/stream-worker")
    port = free_port()
    env = _make_env(STS_PORT=str(port), DEV_SAMPLE_SECONDS="2")
    command = [sys.executable, "scripts/dev_local.py", "--workdir", str(tmp_path)]
    status, output = _signal_when(command, marker, signum, env)
    assert status == 0, output
    assert "stopped: sts-service and stream-worker are down" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "killed" not in output, f"a service had to be killed:\n{output}"
    assert not _listening(port), f"something still listens on {port}"
    assert not _processes_with_env(f"STS_PORT={port}"), "sts-service was left running"
    assert not _processes_mentioning(str(tmp_path)), "stream-worker was left running"
