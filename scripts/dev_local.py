"""`make dev-local`: the docker-compose stack without containers, from the package venvs.

Settings come from `.env.example`, the environment winning as in compose's interpolation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from devproc import (
    HEALTH_PATH,
    REPO,
    DevError,
    cli,
    port_is_free,
    read_env_file,
    say,
    stream_worker,
    sts_service,
)

NAME = "dev-local"
LOOP_SCRIPT = REPO / "scripts" / "dev_worker_loop.py"
HEALTH_TIMEOUT_S = 60.0
WORKER_STOP_GRACE_S = 20.0


def settings_env(env_file: Path, environ: dict[str, str]) -> dict[str, str]:
    """`env_file` overridden by `environ`; WORKER_STS_URL defaults to sts-service's address.

    Raises:
        DevError: if STS_PORT is missing or not a port number.
    """
    env = {**read_env_file(env_file), **environ}
    port = env.get("STS_PORT", "")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise DevError(f"STS_PORT must be a port number (1-65535), got {port!r} (see {env_file})")
    env.setdefault("WORKER_STS_URL", f"http://{reach_host(env.get('STS_HOST', ''))}:{port}")
    return env


def reach_host(bind_host: str) -> str:
    """Where a client reaches a server bound to `bind_host` (wildcards: 127.0.0.1)."""
    return "127.0.0.1" if bind_host in ("", "0.0.0.0", "::") else bind_host


async def run(args: argparse.Namespace) -> int:
    """Run both services until a signal (the normal way out) or until one of them exits."""
    env = settings_env(args.env_file, dict(os.environ))
    host, port = reach_host(env.get("STS_HOST", "")), int(env["STS_PORT"])
    if not port_is_free(host, port):
        raise DevError(
            f"something already listens on {host}:{port} (a stale sts-service?): stop it, "
            "or pick another port: STS_PORT=NNNN make dev-local"
        )
    loop = [str(LOOP_SCRIPT), "--workdir", str(args.workdir)]
    loop += ["--seconds", env.get("DEV_SAMPLE_SECONDS", "8")]
    url = f"http://{host}:{port}"
    worker = stream_worker(*loop, env=env, grace_s=WORKER_STOP_GRACE_S)
    say(NAME, f"starting sts-service on {url}")
    try:
        async with sts_service(url, env, HEALTH_TIMEOUT_S, healthy=False) as sts, worker:
            say(NAME, f"sts-service is healthy at {url}{HEALTH_PATH}; starting stream-worker")
            waits = {asyncio.create_task(s.wait()): s.name for s in (sts, worker)}
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
            say(NAME, f"{waits[done.pop()]} exited on its own; stopping the other service")
            return 1
    finally:
        say(NAME, "stopped: sts-service and stream-worker are down")


def main(argv: list[str] | None = None) -> int:
    """Command line (see --help)."""
    return cli(NAME, __doc__, run, argv, stopped_ok=True, env_file=True)


if __name__ == "__main__":
    raise SystemExit(main())
