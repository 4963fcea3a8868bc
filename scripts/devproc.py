"""Helpers shared by the dev loop scripts (dev_local.py, demo.py): standard library only.

They run from the root tools env, which must not import the services: each service is started
with its own venv's interpreter, in its own process group, so that stopping it also stops
whatever it spawned (uvicorn's reloader, the worker loop's stream-worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = REPO / ".env.example"
#: sts-service's health route: shared_utils.contract.HEALTH_PATH (the drift test checks it).
HEALTH_PATH = "/v1/health"
STS_SERVICE = "apps/sts-service"
STREAM_WORKER = "apps/stream-worker"


#: What stops a dev-loop script: Ctrl-C, `kill`, and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevError(Exception):
    """A step of the dev loop failed; the message is one line for the user."""


def run_supervised(main: Callable[[], Coroutine[Any, Any, int]]) -> int | signal.Signals:
    """Run `main` in an event loop until it returns or a stop signal arrives.

    The services run in sessions of their own (so that stopping one stops its whole process
    group), so no signal reaches them from the terminal or from a `kill` of this script: this
    script must stop them itself. The first stop signal cancels `main`, whose ``finally``
    blocks stop what it started; further signals are ignored, so they cannot interrupt that
    clean-up. A signal ignored when the script started (``&`` in a non-interactive shell
    ignores SIGINT) stays ignored.

    Returns:
        `main`'s exit status, or the signal that stopped it.
    """
    received: list[signal.Signals] = []

    async def supervised() -> int | signal.Signals:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: signal.Signals) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                loop.add_signal_handler(signum, stop, signum)
        try:
            return await main()
        except asyncio.CancelledError:
            if not received:
                raise
            return received[0]

    try:
        return asyncio.run(supervised())
    except KeyboardInterrupt:  # Ctrl-C before the loop took over SIGINT: nothing started yet
        return signal.SIGINT


def venv_python(package: str) -> Path:
    """The interpreter of a package's venv.

    Raises:
        DevError: if the venv is missing (naming the fix: `make install`).
    """
    python = REPO / package / ".venv" / "bin" / "python"
    if not python.exists():
        raise DevError(f"{package}/.venv is missing: run `make install` at the repo root first")
    return python


def read_env_file(path: Path) -> dict[str, str]:
    """Read a docker-compose style env file: ``KEY=VALUE`` lines, ``#`` comments, blank lines.

    Values may be wrapped in single or double quotes (removed). No interpolation.

    Raises:
        DevError: naming the file and line of a malformed line.
    """
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DevError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise DevError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on `host`:`port` (a stale server would answer there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def check_health(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Service:
    """A child process in its own process group, its output relayed with a name prefix."""

    name: str
    command: list[str]
    env: Mapping[str, str]
    width: int = 14
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    _pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the process (new session = new process group), relaying its output."""
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=REPO,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._relay())

    async def _relay(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        prefix = f"{self.name:<{self.width}}| "
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            del self.lines[:-200]  # keep the tail only: the loop runs for hours
            sys.stdout.write(prefix + line + "\n")
            sys.stdout.flush()

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.returncode is None

    async def wait(self) -> int:
        """Wait for the process to exit and its output to be relayed; returns its status."""
        assert self.process is not None
        status = await self.process.wait()
        if self._pump is not None:
            await self._pump
        return status

    def signal(self, signum: int, *, group: bool) -> None:
        """Send `signum` to the process (or its whole process group); gone is fine."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.process.pid, signum)
            elif self.process.returncode is None:
                self.process.send_signal(signum)

    async def stop(self, signum: int, grace_s: float, *, group: bool = True) -> int | None:
        """Send `signum`, wait up to `grace_s`, then SIGKILL the whole group.

        The group is always killed at the end, so nothing the service spawned survives it.
        Returns the exit status, or None if it had not been started.
        """
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.signal(signum, group=group)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), grace_s)
            except asyncio.TimeoutError:
                prefix = f"{self.name:<{self.width}}| "
                sys.stdout.write(f"{prefix}did not stop in {grace_s:g} s: killed\n")
        self.signal(signal.SIGKILL, group=True)
        return await self.wait()


async def wait_healthy(service: Service, url: str, timeout_s: float) -> None:
    """Poll `url` until it answers 2xx.

    Raises:
        DevError: if the service exits first or `timeout_s` passes.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not service.running:
            status = await service.wait()
            raise DevError(f"{service.name} exited with status {status} before it was healthy")
        if await asyncio.to_thread(check_health, url, 0.5):
            return
        await asyncio.sleep(0.1)
    raise DevError(f"{service.name} was not healthy at {url} within {timeout_s:g} s")
