"""Shared fixtures: the in-process fake sts-service and the real one as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shared_utils.contract import HEALTH_PATH

# pytest runs with --import-mode=importlib, which puts no test folder on sys.path; the test
# helpers (worker_support.py) live here, outside the installed package, so add this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_support import FakeSts, free_port  # must follow the sys.path line

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parents[1]
STS_PYTHON = REPO_ROOT / "apps" / "sts-service" / ".venv" / "bin" / "python"


@pytest.fixture
def fake_sts() -> FakeSts:
    return FakeSts()


# ---------------------------------------------------------------- the real sts-service process


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on (a service that is down)."""
    return f"http://127.0.0.1:{free_port()}"


class StsProcess:
    """The real sts-service, started from its own venv on a free loopback port."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:  # slow on a loaded machine
        if not STS_PYTHON.exists():
            pytest.fail(
                f"sts-service's environment {STS_PYTHON} does not exist: run `make install` "
                f"at the repository root ({REPO_ROOT}) first"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STS_", "WORKER_"))}
        env.update(
            {"STS_HOST": "127.0.0.1", "STS_PORT": str(self.port), "STS_LOG_LEVEL": "WARNING"}
        )
        env.update(self.env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"sts-service exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(self.url + HEALTH_PATH, timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"sts-service did not become healthy on port {self.port} in {timeout_s} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:  # graceful, but do not wait for requests a fault makes hang
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def start_sts(tmp_path: Path) -> Iterator[Callable[..., StsProcess]]:
    started: list[StsProcess] = []

    def start(port: int | None = None, **env: str) -> StsProcess:
        service = StsProcess(port or free_port(), env, tmp_path / "sts.log")
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
