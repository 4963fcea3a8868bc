"""Entry point: ``sts-service`` == ``python -m sts_service`` == ``python -m sts_service.main``.

Loads `StsSettings` from the environment (bad settings: one line on stderr, exit status 2),
configures logging and serves the app with uvicorn until SIGINT or SIGTERM (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared_utils.contract import ErrorCode
from shared_utils.logging import configure_logging
from shared_utils.settings import SettingsError, load_settings
from sts_service.app import SERVICE_NAME, create_app
from sts_service.config import StsSettings
from sts_service.errors import error_body

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


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a size and a time limit on each request head.

    uvicorn bounds neither: it arms its keep-alive timer only after a response, and any byte
    disarms it, so a connection that sends nothing, or a header a byte at a time, stays open
    forever; and httptools re-joins a header value that arrives in pieces, so a header of
    tens of megabytes costs seconds of CPU while every other client waits. Here the head of
    each request (request line and headers) must be complete within `head_timeout_s` of the
    connection opening or of the previous response, and within `max_head_bytes`. Past the
    size the client gets 431, past the time 408 (or a silent close if it sent nothing); both
    close the connection. `guarded_http_protocol` sets the two limits from the settings.
    """

    max_head_bytes: ClassVar[int] = StsSettings.model_fields["max_header_bytes"].default
    head_timeout_s: ClassVar[float] = StsSettings.model_fields["header_timeout_s"].default

    # Per connection; set by connection_made before any data arrives.
    _head_bytes: int = 0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the base's BaseTransport the same way
        """Start the connection and the clock for its first request head."""
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the head clock of a closed connection."""
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does; refuse a head that grew past `max_head_bytes`."""
        waiting = self._head_timer is not None
        super().data_received(data)
        if waiting and self._head_timer is not None and not self.transport.is_closing():
            # Bytes that end a head are not counted: they may carry the body too.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    f"request head: more than {self.max_head_bytes} bytes of request line "
                    "and headers (STS_MAX_HEADER_BYTES)",
                )

    def on_headers_complete(self) -> None:
        """The head is complete: stop its clock, then dispatch as uvicorn does."""
        self._stop_head_clock()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """After a response, the next head must come in time (unless it is already here)."""
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._await_head()

    def _await_head(self) -> None:
        self._stop_head_clock()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:  # an idle connection: nothing to answer
            self.transport.close()
            return
        self._refuse(
            408,
            f"request head: not complete within {self.head_timeout_s:g} s (STS_HEADER_TIMEOUT_S)",
        )

    def _refuse(self, status: int, message: str) -> None:
        logger.info("closed a connection: %s", message)
        self._stop_head_clock()
        body = error_body(ErrorCode.INVALID_REQUEST, message)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()


def guarded_http_protocol(settings: StsSettings) -> type[GuardedHttpProtocol]:
    """`GuardedHttpProtocol` with the head limits of `settings`."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_head_bytes": settings.max_header_bytes,
            "head_timeout_s": settings.header_timeout_s,
        },
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
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            # The reloader pickles its configuration, so it takes the protocol by import
            # name, with the default head limits.
            http=f"{__name__}:{GuardedHttpProtocol.__name__}",
            timeout_keep_alive=settings.keep_alive_timeout_s,
            limit_concurrency=settings.max_connections,
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


def uvicorn_config(app: ASGIApp, settings: StsSettings) -> uvicorn.Config:
    """The uvicorn configuration of the service (also used by the benchmark's bare server).

    The connection limits come from `settings`: the request head guard
    (`GuardedHttpProtocol`, on uvicorn's httptools parser), the keep-alive timeout, and the
    connection limit (uvicorn answers 503 past it). uvicorn picks uvloop when installed
    (``uvicorn[standard]``). Its own logging setup is off so records reach the handler
    `configure_logging` installed, and the access log is off: one line per request costs too
    much at hundreds of requests per second.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_http_protocol(settings),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def _reload_dirs() -> list[str]:
    """Source directories of the service and of the local libraries it runs on."""
    import shared_audio
    import shared_utils

    modules = (sys.modules[__name__], shared_utils, shared_audio)
    return [str(Path(str(module.__file__)).resolve().parent) for module in modules]


if __name__ == "__main__":
    raise SystemExit(main())
