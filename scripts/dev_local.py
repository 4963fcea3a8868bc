"""`make dev-local`: the docker-compose stack without containers, from the package venvs.

Reads `.env.example` (the one source of ports and settings, also used by compose); variables
already set in the environment win, as they do for compose's ``${VAR}`` interpolation. Starts
sts-service, waits for its health route, then starts the worker loop (dev_worker_loop.py: a
generated sample dubbed in --realtime mode, over and over). Every output line is prefixed with
the service name. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the worker gracefully, then sts-service,
and kills both process groups, so nothing is left behind. Standard library only: it runs from
the root tools env and never imports the services.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from devproc import (
    ENV_EXAMPLE,
    HEALTH_PATH,
    REPO,
    STREAM_WORKER,
    STS_SERVICE,
    DevError,
    Service,
    port_is_free,
    read_env_file,
    run_supervised,
    venv_python,
    wait_healthy,
)

LOOP_SCRIPT = REPO / "scripts" / "dev_worker_loop.py"
HEALTH_TIMEOUT_S = 60.0
WORKER_STOP_GRACE_S = 20.0
STS_STOP_GRACE_S = 10.0


def settings_env(env_file: Path, environ: dict[str, str]) -> dict[str, str]:
    """The environment of both services: `env_file`, overridden by `environ`.

    WORKER_STS_URL, unless set, points at sts-service's STS_HOST/STS_PORT (a wildcard bind
    address is reached through 127.0.0.1).

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


async def run(env_file: Path, workdir: Path) -> int:
    """Run both services until a signal or until one of them exits; returns the exit status."""
    sts_python = venv_python(STS_SERVICE)
    worker_python = venv_python(STREAM_WORKER)
    env = settings_env(env_file, dict(os.environ))
    port = int(env["STS_PORT"])
    probe_host = reach_host(env.get("STS_HOST", ""))
    if not port_is_free(probe_host, port):
        raise DevError(
            f"something already listens on {probe_host}:{port} (a stale sts-service?): stop it, "
            "or pick another port: STS_PORT=NNNN make dev-local"
        )
    seconds = env.get("DEV_SAMPLE_SECONDS", "8")

    sts = Service("sts-service", [str(sts_python), "-m", "sts_service"], env)
    worker = Service(
        "stream-worker",
        [str(worker_python), str(LOOP_SCRIPT), "--workdir", str(workdir), "--seconds", seconds],
        env,
    )
    health_url = f"http://{probe_host}:{port}{HEALTH_PATH}"
    try:
        await sts.start()
        await wait_healthy(sts, health_url, HEALTH_TIMEOUT_S)
        _say(f"sts-service is healthy at {health_url}; starting stream-worker")
        await worker.start()
        waits = {
            asyncio.create_task(sts.wait()): "sts-service",
            asyncio.create_task(worker.wait()): "stream-worker",
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        _say(f"{waits[next(iter(done))]} exited on its own; stopping the other service")
        return 1
    except asyncio.CancelledError:  # a stop signal (run_supervised): the normal way out
        _say("stopping")
        raise
    finally:
        # SIGTERM, not SIGINT: the worker loop stops gracefully on either, but one still
        # starting up dies quietly of SIGTERM, where SIGINT prints a traceback.
        await worker.stop(signal.SIGTERM, WORKER_STOP_GRACE_S, group=False)
        await sts.stop(signal.SIGTERM, STS_STOP_GRACE_S)
        _say("stopped: sts-service and stream-worker are down")


def _say(message: str) -> None:
    sys.stdout.write(f"{'dev-local':<14}| {message}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Command line: ``dev_local.py [--env-file .env.example] [--workdir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=ENV_EXAMPLE, help="settings file")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / ".make" / "dev-local",
        help="where the sample and the dubbed output go",
    )
    args = parser.parse_args(argv)
    try:
        result = run_supervised(lambda: run(args.env_file, args.workdir.resolve()))
    except DevError as exc:
        print(f"dev-local: error: {exc}", file=sys.stderr)
        return 2
    return 0 if isinstance(result, signal.Signals) else result  # a signal is how it stops


if __name__ == "__main__":
    raise SystemExit(main())
