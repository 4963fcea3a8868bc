"""Entry point: ``sts-service`` == ``python -m sts_service`` == ``python -m sts_service.main``.

Loads `StsSettings` from the environment (bad settings: one line on stderr, exit status 2),
configures logging and serves the app with uvicorn until SIGINT or SIGTERM (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from shared_utils.logging import configure_logging
from shared_utils.settings import SettingsError, load_settings
from sts_service import http_guard
from sts_service.app import SERVICE_NAME, create_app
from sts_service.config import StsSettings

logger = logging.getLogger(__name__)

#: Exit status for settings that cannot be loaded.
EXIT_BAD_SETTINGS = 2
#: Exit status when the server cannot start (e.g. the port is taken).
EXIT_START_FAILED = 1


class _StopSignalError(Exception):
    """Raised by the SIGTERM handler that uvicorn re-raises after its graceful shutdown."""


class _Server(uvicorn.Server):
    """uvicorn server that logs the one "listening" line once the socket accepts connections."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then log where the service listens."""
        await super().startup(sockets=sockets)
        if self.started:
            logger.info(
                "%s listening on http://%s:%d", SERVICE_NAME, self.config.host, self.config.port
            )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=SERVICE_NAME,
        description="Speech -> text -> speech HTTP service. Configured by STS_* environment "
        f"variables: {', '.join(StsSettings.env_vars())}.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While serving, make SIGTERM end `main` normally (uvicorn re-raises it after shutdown)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise _StopSignalError(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run sts-service until SIGINT/SIGTERM.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``); only ``--help``/``--version``.

    Returns:
        0 after a clean shutdown, 1 when the server could not start, 2 for bad settings.
    """
    args = _parser().parse_args(argv)
    if args.version:
        from shared_utils.buildinfo import build_info

        info = build_info(SERVICE_NAME)
        sys.stdout.write(f"{SERVICE_NAME} {info.version} ({info.git_revision})\n")
        return 0
    try:
        settings = load_settings(StsSettings)
    except SettingsError as exc:
        sys.stderr.write(f"{SERVICE_NAME}: invalid settings: {exc}\n")
        return EXIT_BAD_SETTINGS
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_format)

    if settings.reload:
        logger.info(
            "%s listening on http://%s:%d (auto-reload)", SERVICE_NAME, settings.host, settings.port
        )
        uvicorn.run(
            "sts_service.app:app_factory",
            factory=True,
            reload=True,
            reload_dirs=_reload_dirs(),
            **uvicorn_options(settings, reload=True),
        )
        return 0

    server = _Server(uvicorn_config(create_app(settings), settings))
    try:
        with _sigterm_raises():
            server.run()
    except (KeyboardInterrupt, _StopSignalError) as stop:
        logger.info("%s stopped (%s)", SERVICE_NAME, str(stop) or "SIGINT")
        return 0
    except SystemExit:  # uvicorn exits when it cannot bind or start (it logged why)
        logger.error("%s could not start on %s:%d", SERVICE_NAME, settings.host, settings.port)
        return EXIT_START_FAILED
    if not server.started:
        logger.error("%s could not start on %s:%d", SERVICE_NAME, settings.host, settings.port)
        return EXIT_START_FAILED
    logger.info("%s stopped", SERVICE_NAME)
    return 0


def uvicorn_options(settings: StsSettings, *, reload: bool = False) -> dict[str, Any]:
    """Uvicorn's options for the service, written once for both ways of running it.

    The connection limits come from `settings`: the request head guard
    (`sts_service.http_guard`, on uvicorn's httptools parser), the keep-alive timeout, and the
    connection limit (uvicorn answers 503 past it). With `reload`, the reloader pickles its
    configuration into a new process, so the protocol is named by import string, and reads
    the same limits from the same environment there. uvicorn picks uvloop when installed
    (``uvicorn[standard]``). Its own logging setup is off so records reach the handler
    `configure_logging` installed, and the access log is off: one line per request costs too
    much at hundreds of requests per second.
    """
    http: str | type[http_guard.GuardedHttpProtocol] = (
        f"{http_guard.__name__}:{http_guard.FROM_ENVIRONMENT}"
        if reload
        else http_guard.guarded_http_protocol(settings)
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "http": http,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "limit_concurrency": settings.max_connections,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def uvicorn_config(app: ASGIApp, settings: StsSettings) -> uvicorn.Config:
    """The uvicorn configuration of the service (also used by the benchmark's bare server)."""
    return uvicorn.Config(app, **uvicorn_options(settings))


def _reload_dirs() -> list[str]:
    """Source directories of the service and of the local libraries it runs on."""
    import shared_audio
    import shared_utils

    modules = (sys.modules[__name__], shared_utils, shared_audio)
    return [str(Path(str(module.__file__)).resolve().parent) for module in modules]


if __name__ == "__main__":
    raise SystemExit(main())
