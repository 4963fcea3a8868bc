"""The dev loop end to end (make dev-local, make demo), from the
package venvs on free ports; they fail (never skip) when `make install` was not run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from devproc import STOP_SIGNALS, free_port, health, json_records, port_is_free
from scaffold import REPO, outside_make_env, package_venv_python, run, run_ok

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _venvs() -> None:
    for package in ("apps/sts-service", "apps/stream-worker"):
        package_venv_python(package)


def _make_env(**extra: str) -> dict[str, str]:
    env = outside_make_env()
    return {k: v for k, v in env.items() if not k.startswith(("STS_", "WORKER_", "DEV_"))} | extra


def _a_process_with(proc_file: str, needle: str) -> bool:
    """Whether a process's /proc/PID/`proc_file` (``cmdline``, ``environ``) holds `needle`."""
    for path in Path("/proc").glob(f"[0-9]*/{proc_file}"):
        with contextlib.suppress(OSError):  # it ended, or is not ours to read
            if needle.encode() in b"\0" + path.read_bytes():
                return True
    return False


def _assert_stopped_quietly(output: str, port: int, workdir: Path) -> None:
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "killed" not in output, f"a service had to be killed:\n{output}"
    assert port_is_free("127.0.0.1", port), f"something still listens on {port}"
    assert not _a_process_with("environ", f"\0STS_PORT={port}\0"), "sts-service was left running"
    assert not _a_process_with("cmdline", str(workdir)), "stream-worker was left running"


def _stop_signals_at_default() -> None:
    """In the background of a non-interactive shell SIGINT starts ignored, and under nohup SIGHUP
    does; a terminal's Ctrl-C or hang-up reaches a process whose handlers are at their default.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def _signal_when(
    command: list[str], env: dict[str, str], ready: Callable[[str], bool], signum: int, log: Path
) -> tuple[int, str]:
    """Start `command` in a process group of its own (a SIGINT to it is a Ctrl-C), its output
    in `log`; send `signum` to the group once `ready(output)`, or on a failure. Returns (exit
    status, output)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_stop_signals_at_default,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not ready(output := log.read_text(errors="replace")):
            assert process.poll() is None, f"exited early:\n{output}"
            assert time.monotonic() < deadline, f"not ready within 90 s:\n{output}"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return process.returncode, log.read_text(errors="replace")


def _summaries(output: str) -> list[dict[str, Any]]:
    return [r for r in json_records(output) if r.get("event") == "summary"]


def test_dev_local_runs_both_services_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "dev-local-work"

    def first_pass_done(output: str) -> bool:
        if not _summaries(output) or health(f"http://127.0.0.1:{port}") is None:
            return False
        with wave.open(str(workdir / "dubbed.wav"), "rb") as dubbed:
            assert dubbed.getnframes() == 2 * 16000
        return True

    status, output = _signal_when(
        ["make", "--no-print-directory", "dev-local", f"DEV_LOCAL_ARGS=--workdir {workdir}"],
        _make_env(STS_PORT=str(port), DEV_SAMPLE_SECONDS="2", WORKER_SEGMENT_MS="1000"),
        first_pass_done,
        signal.SIGINT,
        tmp_path / "output.log",
    )
    summary = _summaries(output)[0]
    assert summary["segments"]["dubbed"] == summary["segments"]["total"] > 0, summary
    assert summary["sts_url"] == f"http://127.0.0.1:{port}"
    prefixes = {line.split("|", 1)[0].strip() for line in output.splitlines() if "|" in line}
    assert {"sts-service", "stream-worker", "dev-local"} <= prefixes, prefixes
    # make itself always dies of the SIGINT it was sent (as after a terminal Ctrl-C), even
    # when its recipe exits 0; the supervisor's own clean stop is in its output.
    assert status in (0, -signal.SIGINT), f"exit {status}:\n{output}"
    assert "stopped: sts-service and stream-worker are down" in output, output
    _assert_stopped_quietly(output, port, workdir)


def test_dev_local_refuses_a_taken_port(tmp_path: Path) -> None:
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
    env = _make_env(WORKER_SEGMENT_MS="not-a-number")  # the demo ignores the caller's config
    output = run_ok(["make", "demo", f"DEMO_ARGS=--workdir {tmp_path}"], REPO, env)
    assert "demo: OK, dubbed output produced" in output
    assert f"output       {tmp_path / 'dubbed.wav'}" in output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["segments"]["fallback"] == 0 < summary["segments"]["dubbed"]
    with wave.open(str(tmp_path / "dubbed.wav"), "rb") as dubbed:
        assert dubbed.getnframes() == summary["input_frames"] == 10 * 16000
    port = int(str(summary["sts_url"]).rsplit(":", 1)[1])
    assert port_is_free("127.0.0.1", port), "sts-service was left running"


@pytest.mark.parametrize(
    ("script", "signum", "marker"),
    [
        ("demo", signal.SIGTERM, "3/4 dubbing"),  # both services running
        ("demo", signal.SIGINT, "2/4 starting"),  # Ctrl-C while sts-service starts
        ("demo", signal.SIGHUP, "3/4 dubbing"),  # the terminal was closed
        ("dev-local", signal.SIGTERM, "starting stream-worker"),  # both services running
        ("dev-local", signal.SIGINT, "sts-service   |"),  # Ctrl-C before stream-worker starts
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_a_signal_stops_everything_the_script_started_quietly(
    tmp_path: Path, script: str, signum: signal.Signals, marker: str
) -> None:
    env = _make_env(STS_PORT=str(free_port()), DEV_SAMPLE_SECONDS="2")  # the demo ignores them
    command = [sys.executable, f"scripts/{script.replace('-', '_')}.py", "--workdir", str(tmp_path)]
    status, output = _signal_when(
        command, env, lambda output: marker in output, signum, tmp_path / "output.log"
    )
    # Stopping is the normal end of the dev-local loop; the demo dies of the signal.
    assert status == (0 if script == "dev-local" else 128 + signum), output
    assert f"{script}: stopped by {signum.name}" in output, output
    if script == "dev-local":
        assert "stopped: sts-service and stream-worker are down" in output, output
    port = re.search(r"starting sts-service on http://127\.0\.0\.1:(\d+)", output)
    assert port, output
    _assert_stopped_quietly(output, int(port[1]), tmp_path)
