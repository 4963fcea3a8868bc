"""Smoke test of the containerised dev stack (`make dev-smoke`), on a real Docker engine.

A compose project of its own on a free port (a running `make dev` is never touched): both
services healthy, a dubbed pass, a reload after an edit, then nothing left after teardown.
Exits 1 on a failed check (with the stack's logs). `make dev-smoke` runs it once its engine check
(dev_require_engine in scripts/mk/dev.mk) passed, with the compose command that check found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from devproc import ENV_EXAMPLE, HEALTH_PATH, REPO, free_port, health, json_records, say

COMPOSE_FILE = REPO / "infra" / "docker-compose.local.yml"
#: A file of sts-service the compose file mounts into the container (the reload check edits it).
RELOAD_PROBE = REPO / "apps" / "sts-service" / "sts_service" / "__init__.py"
SERVICES = ("sts-service", "stream-worker")
HEALTH_FORMAT = "{{.State.Health.Status}}"
#: Terminal control sequences compose writes even with --no-color (e.g. erase-line, ESC[2K).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NAME = "dev-smoke"
EXIT_FAILED = 1


class SmokeError(Exception):
    """A check of the smoke test failed; the message says which."""


def _output(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    """Call `check` every second until it is true; SmokeError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SmokeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(1.0)


class Stack:
    """One compose project of the dev stack."""

    def __init__(self, compose: list[str], project: str, port: int) -> None:
        self.base = [*compose, "--project-name", project, "--env-file", str(ENV_EXAMPLE)]
        self.base += ["-f", str(COMPOSE_FILE)]
        self.project, self.port = project, port
        self.url = f"http://127.0.0.1:{port}"
        # The shell wins over .env.example in compose's interpolation: the free port goes
        # everywhere ${STS_PORT} is used (published port, service and worker URL).
        self.env = {**os.environ, "STS_PORT": str(port)}

    def compose(self, *args: str, check: bool = True) -> str:
        """Run one compose command of the project; its output (SmokeError when it fails)."""
        result = subprocess.run(
            [*self.base, *args], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise SmokeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}")
        return result.stdout

    def both_healthy(self) -> bool:
        """Whether both services are healthy (SmokeError as soon as one is unhealthy)."""
        states = {}
        for service in SERVICES:
            for container in self.compose("ps", "--quiet", service).split()[:1]:
                inspect = _output("docker", "inspect", "--format", HEALTH_FORMAT, container)
                states[service] = inspect.stdout.strip() or "unknown"
        unhealthy = [name for name, state in states.items() if state == "unhealthy"]
        if unhealthy:
            raise SmokeError(f"{', '.join(unhealthy)} reported unhealthy")
        return all(states.get(name) == "healthy" for name in SERVICES)

    def worker_summaries(self) -> list[dict[str, Any]]:
        """The JSON summary lines the worker printed so far (one per finished pass)."""
        logs = self.compose("logs", "--no-color", "--no-log-prefix", "stream-worker")
        records = json_records(ANSI_ESCAPE.sub("", logs))
        return [record for record in records if record.get("event") == "summary"]

    def uptime(self) -> float | None:
        """sts-service's uptime, or None while it does not answer (restarting)."""
        uptime = (health(self.url, 3.0) or {}).get("uptime_s")
        return None if uptime is None else float(uptime)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of the project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        found = {
            kind: _output("docker", *command, "--quiet", "--filter", label).stdout.split()
            for kind, command in (
                ("containers", ["ps", "--all"]),
                ("networks", ["network", "ls"]),
                ("volumes", ["volume", "ls"]),
            )
        }
        return {kind: names for kind, names in found.items() if names}


def check_dubbed(stack: Stack, timeout_s: float) -> None:
    """Wait for the worker's first summary; it must have dubbed a segment."""
    wait_for("the worker's first pass summary", lambda: bool(stack.worker_summaries()), timeout_s)
    summary = stack.worker_summaries()[0]
    segments = summary.get("segments") or {}
    if int(segments.get("dubbed", 0)) < 1:
        raise SmokeError(f"the worker's first pass dubbed no segment: {json.dumps(summary)}")
    counts = ", ".join(f"{segments.get(key)} {key}" for key in ("total", "dubbed", "fallback"))
    say(NAME, f"worker pass done: {counts} segment(s)")


def check_reload(stack: Stack, timeout_s: float) -> None:
    """Edit a mounted source; the running service must restart (then restore the file)."""
    if stack.uptime() is None:
        raise SmokeError(f"sts-service does not answer on {stack.url}{HEALTH_PATH}")
    original = RELOAD_PROBE.read_bytes()
    edited_at = time.monotonic()
    try:
        RELOAD_PROBE.write_bytes(original + b"# dev-smoke: an edit the reloader must see\n")

        def restarted() -> bool:
            uptime = stack.uptime()
            return uptime is not None and uptime < time.monotonic() - edited_at

        wait_for("sts-service to reload after an edit of a mounted source", restarted, timeout_s)
    finally:
        RELOAD_PROBE.write_bytes(original)
    say(NAME, f"reload: editing {RELOAD_PROBE.relative_to(REPO)} restarted sts-service")


def run(compose: list[str], timeout_s: float) -> int:
    """The whole smoke test with `compose` (e.g. ``docker compose``); returns the exit status."""
    stack = Stack(compose, f"live-dubbing-smoke-{os.getpid()}", free_port())
    say(NAME, f"project {stack.project}, sts-service on {stack.url}")
    failed = False
    try:
        say(NAME, "building and starting the stack")
        stack.compose("up", "--build", "--detach")
        wait_for("both services to be healthy", stack.both_healthy, timeout_s)
        say(NAME, "both services are healthy")
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
    say(NAME, "torn down: no container, network or volume left")
    if failed:
        return EXIT_FAILED
    say(NAME, "passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``dev_smoke.py --compose CMD [--timeout S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", required=True, help="'docker compose' or 'docker-compose'")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds for each wait")
    args = parser.parse_args(argv)
    return run(args.compose.split(), args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
