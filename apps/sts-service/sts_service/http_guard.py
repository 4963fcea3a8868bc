"""A size and a time limit on each request head: the one place that uses uvicorn's private API.

uvicorn has no public setting for either on its httptools parser. It arms its keep-alive
timer only after a response, and any byte disarms it, so a connection that sends nothing, or
a header a byte at a time, stays open forever. httptools re-joins a header value that arrives
in pieces, so a header of tens of megabytes costs seconds of CPU while every other client
waits. (uvicorn's h11 parser has a public size limit, ``h11_max_incomplete_event_size``, but
no time limit, and it parses several times slower.) So `GuardedHttpProtocol` subclasses
``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`` and uses its hooks
(`connection_made`, `data_received`, `on_headers_complete`, `on_response_complete`) and
attributes (`transport`, `loop`, `cycle`, `server_state`). ``tests/unit/test_http_guard.py``
checks each of them, so an uvicorn upgrade that moves one fails there, by name.

The head of each request (request line and headers) must be complete within
`head_timeout_s` of the connection opening or of the previous response, and within
`max_head_bytes`, counting every byte up to the blank line that ends it, even when the whole
head and its body arrive in one read. Past the size the client gets 431, past the time 408
(or a silent close if it sent nothing); both close the connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from http import HTTPStatus
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared_utils.contract import ErrorCode
from shared_utils.settings import load_settings
from sts_service.config import StsSettings
from sts_service.errors import error_response

__all__ = ["FROM_ENVIRONMENT", "GuardedHttpProtocol", "guarded_http_protocol"]

logger = logging.getLogger(__name__)

#: The blank line that ends a head; httptools also accepts bare LF line ends.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: Bytes of the previous read kept to find a head end split across two reads.
_TAIL = 3
#: Attribute name under which reload mode imports the protocol with the environment's limits.
FROM_ENVIRONMENT = "FromEnvironment"


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a size and a time limit on each request head."""

    max_head_bytes: ClassVar[int] = StsSettings.model_fields["max_header_bytes"].default
    head_timeout_s: ClassVar[float] = StsSettings.model_fields["header_timeout_s"].default

    # Per connection; set by connection_made before any data arrives.
    _head_bytes: int = 0
    _head_tail: bytes = b""
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
        """Refuse a head that grew past `max_head_bytes`; else parse as uvicorn does."""
        if self._head_timer is not None:
            window = self._head_tail + data
            end = _HEAD_END.search(window)
            # Bytes after the head's end may be its body: only the head is counted.
            self._head_bytes += end.end() - len(self._head_tail) if end else len(data)
            self._head_tail = window[-_TAIL:]
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"request head: more than {self.max_head_bytes} bytes of request line "
                    "and headers (STS_MAX_HEADER_BYTES)",
                )
                return
        super().data_received(data)

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
        self._head_tail = b""
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
            HTTPStatus.REQUEST_TIMEOUT,
            f"request head: not complete within {self.head_timeout_s:g} s (STS_HEADER_TIMEOUT_S)",
        )

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer with the service's error response, written on the raw transport, and close.

        No ASGI cycle exists before a head is parsed, so the response's status line and
        headers are written here.
        """
        logger.info("closed a connection: %s", message)
        self._stop_head_clock()
        response = error_response(
            status, ErrorCode.INVALID_REQUEST, message, headers={"connection": "close"}
        )
        head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")]
        for name, value in [*self.server_state.default_headers, *response.raw_headers]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", response.body]))
        self.transport.close()


def guarded_http_protocol(settings: StsSettings) -> type[GuardedHttpProtocol]:
    """`GuardedHttpProtocol` with the head limits of `settings`."""
    return type(
        GuardedHttpProtocol.__name__,
        (GuardedHttpProtocol,),
        {
            "max_head_bytes": settings.max_header_bytes,
            "head_timeout_s": settings.header_timeout_s,
        },
    )


def __getattr__(name: str) -> type[GuardedHttpProtocol]:
    """``FromEnvironment``: the protocol with the limits of the ``STS_*`` environment.

    uvicorn's reload mode starts the server in a new process and takes the protocol by
    import string, so the limits are read there, from the same environment.
    """
    if name == FROM_ENVIRONMENT:
        return guarded_http_protocol(load_settings(StsSettings))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
