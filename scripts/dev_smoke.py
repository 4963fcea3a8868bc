"""Smoke test of the containerised dev stack (`make dev-smoke`), on a real Docker engine.

1. builds and starts infra/docker-compose.local.yml under its own compose project, on a free
   loopback port, so it never touches a `make dev` stack that is already running;
2. waits until both services report healthy (compose healthchecks);
3. waits for the worker's JSON summary of a finished pass in its logs, and checks that it
   dubbed at least one segment;
4. appends a comment to a mounted sts-service source file and waits until the running service
   restarted (its /v1/health uptime drops), then restores the file;
5. tears everything down and checks that no container, network or volume of the project is
   left.

Exit status 0 on success, 1 on a failed check (with the stack's logs), 2 when no engine or no
compose is usable. Standard library only; run it from the repo root:

    python scripts/dev_smoke.py [--timeout 180]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "infra" / "docker-compose.local.yml"
ENV_FILE = REPO / ".env.example"
HEALTH_PATH = "/v1/health"
#: A file of sts-service the compose file mounts into the container (the reload check edits it).
RELOAD_PROBE = REPO / "apps" / "sts-service" / "sts_service" / "__init__.py"
SERVICES = ("sts-service", "stream-worker")
#: Terminal control sequences compose writes even with --no-color (e.g. erase-line, ESC[2K).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EXIT_FAILED = 1
EXIT_NO_ENGINE = 2


class SmokeError(Exception):
    """A check of the smoke test failed; the message says which."""


def say(message: str) -> None:
    """Print one progress line."""
    print(f"dev-smoke: {message}", flush=True)


def compose_command() -> list[str] | None:
    """`docker compose` (v2), else `docker-compose` (v1), else None."""
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def engine_problem() -> str | None:
    """Why no engine is usable, or None when `docker info` answers."""
    if shutil.which("docker") is None:
        return "Docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if info.returncode != 0:
        return "no Docker engine is reachable (docker info failed)"
    return None


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, every_s: float = 1.0) -> None:
    """Call `check` until it is true; SmokeError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    raise SmokeError(f"timed out after {timeout_s:g} s waiting for {what}")


class Stack:
    """One compose project of the dev stack."""

    def __init__(self, compose: list[str], project: str, port: int) -> None:
        self.base = [*compose, "--project-name", project, "--env-file", str(ENV_FILE)]
        self.base += ["-f", str(COMPOSE_FILE)]
        self.project = project
        self.port = port
        # The shell wins over .env.example in compose's interpolation: the free port goes
        # everywhere ${STS_PORT} is used (published port, service and worker URL).
        self.env = {**os.environ, "STS_PORT": str(port)}

    def compose(self, *args: str, check: bool = True) -> str:
        """Run one compose command of the project; its output (SmokeError when it fails)."""
        result = subprocess.run(
            [*self.base, *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise SmokeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}")
        return result.stdout

    def health_states(self) -> dict[str, str]:
        """Health of each running service container ("healthy", "starting", ...)."""
        states: dict[str, str] = {}
        for service in SERVICES:
            ids = self.compose("ps", "--quiet", service).split()
            if not ids:
                continue
            inspect = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", ids[0]],
                capture_output=True,
                text=True,
                check=False,
            )
            states[service] = inspect.stdout.strip() or "unknown"
        return states

    def both_healthy(self) -> bool:
        """Whether both services are healthy (SmokeError as soon as one is unhealthy)."""
        states = self.health_states()
        unhealthy = [name for name, state in states.items() if state == "unhealthy"]
        if unhealthy:
            raise SmokeError(f"{', '.join(unhealthy)} reported unhealthy")
        return all(states.get(name) == "healthy" for name in SERVICES)

    def worker_summaries(self) -> list[dict[str, Any]]:
        """The JSON summary lines the worker printed so far (one per finished pass)."""
        summaries = []
        logs = self.compose("logs", "--no-color", "--no-log-prefix", "stream-worker")
        for line in logs.splitlines():
            text = ANSI_ESCAPE.sub("", line).strip()
            if not text.startswith("{"):
                continue
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == "summary":
                summaries.append(record)
        return summaries

    def health(self) -> dict[str, Any]:
        """sts-service's health answer, through the published loopback port."""
        url = f"http://127.0.0.1:{self.port}{HEALTH_PATH}"
        with urllib.request.urlopen(url, timeout=3) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of the project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        found: dict[str, list[str]] = {}
        for kind, command in (
            ("containers", ["docker", "ps", "--all", "--quiet", "--filter", label]),
            ("networks", ["docker", "network", "ls", "--quiet", "--filter", label]),
            ("volumes", ["docker", "volume", "ls", "--quiet", "--filter", label]),
        ):
            listed = subprocess.run(command, capture_output=True, text=True, check=False)
            names = listed.stdout.split()
            if names:
                found[kind] = names
        return found


def check_dubbed(stack: Stack, timeout_s: float) -> None:
    """Wait for the worker's first summary; it must have dubbed a segment."""
    wait_for("the worker's first pass summary", lambda: bool(stack.worker_summaries()), timeout_s)
    summary = stack.worker_summaries()[0]
    segments = summary.get("segments") or {}
    if int(segments.get("dubbed", 0)) < 1:
        raise SmokeError(f"the worker's first pass dubbed no segment: {json.dumps(summary)}")
    say(
        f"worker pass done: {segments.get('total')} segment(s), {segments.get('dubbed')} dubbed, "
        f"{segments.get('fallback')} fallback(s)"
    )


def _uptime_or_none(stack: Stack) -> float | None:
    try:
        return float(stack.health()["uptime_s"])
    except (OSError, ValueError, KeyError):
        return None  # restarting: the port does not answer for a moment


def check_reload(stack: Stack, timeout_s: float) -> None:
    """Edit a mounted source; the running service must restart (then restore the file)."""
    before = _uptime_or_none(stack)
    if before is None:
        raise SmokeError(f"sts-service does not answer on 127.0.0.1:{stack.port}{HEALTH_PATH}")
    original = RELOAD_PROBE.read_bytes()
    edited_at = time.monotonic()
    try:
        RELOAD_PROBE.write_bytes(original + b"# dev-smoke: an edit the reloader must see\n")

        def restarted() -> bool:
            uptime = _uptime_or_none(stack)
            return uptime is not None and uptime < time.monotonic() - edited_at

        wait_for("sts-service to reload after an edit of a mounted source", restarted, timeout_s)
    finally:
        RELOAD_PROBE.write_bytes(original)
    say(f"reload: editing {RELOAD_PROBE.relative_to(REPO)} restarted sts-service (uptime reset)")


def run(timeout_s: float) -> int:
    """The whole smoke test; returns the exit status."""
    problem = engine_problem()
    compose = compose_command()
    if problem is None and compose is None:
        problem = "neither 'docker compose' nor 'docker-compose' is installed"
    if problem is not None:
        print(f"dev-smoke: {problem}; cannot run the container smoke test", file=sys.stderr)
        return EXIT_NO_ENGINE
    assert compose is not None
    stack = Stack(compose, f"live-dubbing-smoke-{os.getpid()}", free_port())
    say(f"project {stack.project}, sts-service on 127.0.0.1:{stack.port}")
    failed = False
    try:
        say("building and starting the stack")
        stack.compose("up", "--build", "--detach")
        wait_for("both services to be healthy", stack.both_healthy, timeout_s)
        say("both services are healthy")
        check_dubbed(stack, timeout_s)
        check_reload(stack, timeout_s)
    except SmokeError as exc:
        failed = True
        print(f"dev-smoke: FAILED: {exc}", file=sys.stderr)
        print(stack.compose("logs", "--no-color", "--tail", "60", check=False), file=sys.stderr)
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
    left = stack.leftovers()
    if left:
        print(f"dev-smoke: FAILED: teardown left {left}", file=sys.stderr)
        return EXIT_FAILED
    say("torn down: no container, network or volume left")
    if failed:
        return EXIT_FAILED
    say("passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timeout", type=float, default=240.0, help="seconds allowed for each wait (default 240)"
    )
    args = parser.parse_args(argv)
    return run(args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
