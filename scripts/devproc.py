"""How the dev-loop scripts start, watch and stop the services (standard library only).

Each service runs with its own venv's interpreter in a session of its own, so that stopping it
also stops whatever it spawned (uvicorn's reloader, the worker loop's stream-worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = REPO / ".env.example"
#: sts-service's health route: shared_utils.contract.HEALTH_PATH (the drift test checks it).
HEALTH_PATH = "/v1/health"
#: What stops a dev-loop script: Ctrl-C, `kill`, and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevError(Exception):
    """A step of the dev loop failed; the message is one line for the user."""


def say(name: str, message: str) -> None:
    """One progress line, prefixed like the services' own output."""
    print(f"{name:<14}| {message}", flush=True)


def cli(
    name: str,
    doc: str,
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
    argv: list[str] | None,
    *,
    stopped_ok: bool = False,
    env_file: bool = False,
    flags: dict[str, str] | None = None,
) -> int:
    """Parse ``[--workdir DIR] [--env-file FILE] [FLAG...]``, run `run` until it ends or a signal.

    The first signal cancels `run`, whose clean-up stops the services; later ones are ignored.
    Exits 1 naming the failed step; a signal exits 0 when `stopped_ok`, else 128 + its number.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".make" / name, help="where the files go"
    )
    if env_file:
        parser.add_argument("--env-file", type=Path, default=ENV_EXAMPLE, help="settings file")
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()
    received: list[signal.Signals] = []

    async def supervised() -> int:
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: signal.Signals) -> None:
            if not received:
                received.append(signum)
                say(name, f"stopping ({signum.name})")
                task.cancel()

        for signum in STOP_SIGNALS:  # one ignored at start (``&`` in a script) stays ignored
            if signal.getsignal(signum) is not signal.SIG_IGN:
                asyncio.get_running_loop().add_signal_handler(signum, stop, signum)
        try:
            return await run(args)
        except asyncio.CancelledError:
            if not received:
                raise
            return 0

    try:
        status = asyncio.run(supervised())
    except KeyboardInterrupt:  # Ctrl-C before the loop took over SIGINT: nothing started yet
        received.append(signal.SIGINT)
    except (DevError, OSError, ValueError) as exc:
        print(f"{name}: FAILED: {exc}", file=sys.stderr)
        return 1
    if received:
        print(f"{name}: stopped by {received[0].name}; nothing it started is left running")
        return 0 if stopped_ok else 128 + received[0].value
    return status


def venv_python(package: str) -> str:
    """The interpreter of a package's venv (DevError naming the fix when it is missing)."""
    python = REPO / package / ".venv" / "bin" / "python"
    if not python.exists():
        raise DevError(f"{package}/.venv is missing: run `make install` at the repo root first")
    return str(python)


#: Run with sts-service's interpreter, ``SECONDS SLOT_S PATH SENTENCE...``: English sentences
#: read by Pico (en-US) into a 16 kHz mono WAV, each in a slot of SLOT_S seconds (0: followed by
#: 0.6 s of silence), over and over until SECONDS. Real speech, which whisper can hear.
SPEAK = """
import sys
import numpy as np
from shared_audio import AudioFormat, float32_to_int16, resample, write_wav
from sts_service.backends.pico import pico_speak
seconds, slot_s, path, sentences = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
rate, slots, total = 16000, [], 0
while total < seconds * rate:
    samples, native = pico_speak(sentences[len(slots) % len(sentences)], "en-US")
    spoken = resample(float32_to_int16(samples), native, rate).reshape(-1)
    slot = np.zeros(int(slot_s * rate) or spoken.shape[0] + int(0.6 * rate), np.int16)
    slot[: spoken.shape[0]] = spoken[: slot.shape[0]]
    slots.append(slot)
    total += slot.shape[0]
write_wav(path, np.concatenate(slots)[: int(seconds * rate), None], AudioFormat(rate, 1))
"""


#: The real engines (demo-dub, the capacity bench's --engines), offline; every other sts-service
#: setting at its default.
REAL_ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": "apertium",
    "STS_TTS_BACKEND": "pico",
    "HF_HUB_OFFLINE": "1",
}
#: English news sentences for Pico to read: real speech for whisper (the generated dev sample is
#: only speech-like, which it rightly hears as nothing). demo-dub gives each one a 6 s segment.
NEWS = [
    "Good evening, here are the main stories of the day.",
    "The city council approved a new budget for public schools.",
    "Heavy rain is expected across the north this weekend.",
    "The national team won the final after a penalty shootout.",
    "A new museum of modern art opened its doors to the public.",
]


def speak_command(path: Path, sentences: list[str], seconds: float, slot_s: float = 0) -> list[str]:
    """The command writing `sentences`, read by Pico, into `path` (see SPEAK)."""
    timing = [f"{seconds:g}", f"{slot_s:g}"]
    return [venv_python("apps/sts-service"), "-c", SPEAK, *timing, str(path), *sentences]


def clean_env() -> dict[str, str]:
    """The caller's environment without any STS_* or WORKER_* variable."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(("STS_", "WORKER_"))}


def read_env_file(path: Path) -> dict[str, str]:
    """Read a docker-compose style env file (no interpolation; values may be quoted).

    Raises:
        DevError: naming the file and line that is not ``KEY=VALUE`` or sets a key again.
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
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key.isidentifier():
            raise DevError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if key in values:  # compose would take the last silently: which one is meant?
            raise DevError(f"{path}:{number}: {key} is set twice")
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


def health(url: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """The JSON answer of GET `url` + HEALTH_PATH, or None unless it answers 2xx."""
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=timeout_s) as response:
            answer = json.loads(response.read())
            return answer if isinstance(answer, dict) else {}
    except (urllib.error.URLError, OSError, ValueError):
        return None


def json_records(text: str) -> list[dict[str, Any]]:
    """The JSON objects logged among the lines of `text` (after a prefix like ``name | ``)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:  # no "{" in the line, or not JSON
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass
class Service:
    """A child process in a session of its own, its output relayed with a prefix or in `log`.

    ``async with`` starts it, and stops it whatever ends the block (success, failure, a signal).
    """

    name: str
    command: list[str]
    env: dict[str, str]
    grace_s: float = 10.0
    stop_group: bool = True
    log: Path | None = None
    process: asyncio.subprocess.Process | None = None
    _pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the process."""
        with open(self.log, "wb") if self.log else contextlib.nullcontext() as sink:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=REPO,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink or asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        if self.process.stdout is not None:
            self._pump = asyncio.create_task(self._relay(self.process.stdout))

    async def _relay(self, stdout: asyncio.StreamReader) -> None:
        while raw := await stdout.readline():
            say(self.name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    async def wait(self) -> int:
        """Wait for the process to exit and its output to be relayed; returns its status."""
        assert self.process is not None
        status = await self.process.wait()
        if self._pump is not None:  # shielded: a cancelled wait must not cut the relay short
            await asyncio.shield(self._pump)
        return status

    def _signal(self, signum: int, *, group: bool) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            if group:
                os.killpg(self.process.pid, signum)
            elif self.process.returncode is None:
                self.process.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM (to its group if `stop_group`), then kill its group `grace_s` later."""
        if self.process is None:
            return
        if self.process.returncode is None:
            self._signal(signal.SIGTERM, group=self.stop_group)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), self.grace_s)
            except asyncio.TimeoutError:
                say(self.name, f"did not stop in {self.grace_s:g} s: killed")
        self._signal(signal.SIGKILL, group=True)
        await self.wait()

    async def finish(self, timeout_s: float) -> None:
        """Wait for it to exit 0 within `timeout_s` (DevError otherwise)."""
        try:
            status = await asyncio.wait_for(self.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise DevError(f"{self.name} did not finish within {timeout_s:g} s") from None
        if status != 0:
            raise DevError(f"{self.name} exited with status {status} (its log is above)")


@contextlib.asynccontextmanager
async def sts_service(
    url: str, env: dict[str, str], timeout_s: float, log: Path | None = None, *, healthy: bool
) -> AsyncIterator[Service]:
    """sts-service from its venv, loaded at `url` within `timeout_s` and, if asked, `healthy`."""
    command = [venv_python("apps/sts-service"), "-m", "sts_service"]
    async with Service("sts-service", command, env, log=log) as sts:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sts.process and sts.process.returncode is not None:
                raise DevError(f"sts-service exited with status {await sts.wait()} while starting")
            answer = await asyncio.to_thread(health, url, 0.5)
            status = (answer or {}).get("status", "loading")  # no answer yet: still loading
            if status != "loading":
                if healthy and status != "healthy":
                    raise DevError(f"sts-service is {status}: {answer}")
                yield sts
                return
            await asyncio.sleep(0.1)
        raise DevError(f"sts-service was not healthy at {url} within {timeout_s:g} s")


def stream_worker(*args: str, env: dict[str, str], grace_s: float = 5.0) -> Service:
    """stream-worker's venv interpreter running `args`; SIGTERM stops even its start quietly."""
    command = [venv_python("apps/stream-worker"), *args]
    return Service("stream-worker", command, env, grace_s, stop_group=False)
