"""Pure ASGI middleware: how a request body is received, and how many are processed at once.

A request goes through two limits, in this order:

1. `BodyLimitMiddleware` receives the whole body of a limited route before the application
   sees it. At most `max_receiving` bodies arrive at once (429 before a byte is read), each
   within `max_bytes` (413) and `timeout_s` (408). So the memory held by bodies in transit is
   bounded by the settings, not by how many connections a client opens, and a client that
   sends slowly holds a receiving slot for at most `timeout_s`.
2. `InflightLimitMiddleware` then counts the request as in flight only while the application
   processes it (429 past `limit`). A body still arriving never holds a processing slot.

Every refusal is a contract `ErrorResponse`. A refusal sent before the body was read closes
the connection, so the unread rest is never consumed.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared_utils.contract import ErrorCode
from sts_service.errors import QUEUE_FULL_RETRY_AFTER_S, error_response

logger = logging.getLogger(__name__)

_CLOSE = {"connection": "close"}
_RETRY_LATER = {"retry-after": QUEUE_FULL_RETRY_AFTER_S}


class _TooLargeError(Exception):
    """The body passed the size limit while it was being read."""


class BodyLimitMiddleware:
    """Receive the whole body of `path` requests, bounded in count, size and time.

    * A declared ``Content-Length`` over `max_bytes` gets 413 ``FRAGMENT_TOO_LARGE`` at once
      (any route).
    * With `max_receiving` bodies of `path` already arriving, the next request gets 429
      ``QUEUE_FULL`` before any of its body is read, chunked or not.
    * A body (declared or chunked) is read only up to `max_bytes` (413 past it) and for at
      most `timeout_s` after the request head (408 ``TIMEOUT`` past it).

    The application then gets the complete body in one message. A client that disconnects
    mid-body gets no answer and frees its slot.

    Args:
        app: The wrapped ASGI application.
        path: The route whose bodies are received here (the only one that reads a body).
        max_bytes: Largest accepted body, in bytes.
        max_receiving: Most bodies of `path` arriving at the same time.
        timeout_s: Longest time to receive one body, in seconds.
    """

    def __init__(
        self, app: ASGIApp, path: str, max_bytes: int, max_receiving: int, timeout_s: float
    ) -> None:
        self.app = app
        self.path = path
        self.max_bytes = max_bytes
        self.max_receiving = max_receiving
        self.timeout_s = timeout_s
        self.receiving = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(
                scope, receive, send, f"declared Content-Length of {declared} bytes"
            )
            return
        if scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.receiving >= self.max_receiving:
            await error_response(
                429,
                ErrorCode.QUEUE_FULL,
                f"{self.receiving} request bodies are already arriving, the limit is "
                f"{self.max_receiving} (STS_MAX_RECEIVING); retry later",
                headers={**_RETRY_LATER, **_CLOSE},
            )(scope, receive, send)
            return
        self.receiving += 1
        try:
            message = await asyncio.wait_for(self._read_body(receive), self.timeout_s)
        except _TooLargeError:
            kind = "body" if declared is not None else "chunked body"
            await self._too_large(
                scope, receive, send, f"{kind} of more than {self.max_bytes} bytes"
            )
            return
        except asyncio.TimeoutError:
            logger.info("refused a body not received within %g s", self.timeout_s)
            await error_response(
                408,
                ErrorCode.TIMEOUT,
                f"request body: not complete {self.timeout_s:g} s after the request head "
                "(STS_BODY_TIMEOUT_S); send it faster or in shorter fragments",
                headers=_CLOSE,
            )(scope, receive, send)
            return
        finally:
            self.receiving -= 1
        if message["type"] != "http.request":
            return  # the client left mid-body: nobody to answer

        pending: Message | None = message

        async def replay() -> Message:
            nonlocal pending
            if pending is None:
                return await receive()
            first, pending = pending, None
            return first

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> Message:
        """The whole body as one ``http.request`` message, or the disconnect message."""
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._check_size(len(message.get("body", b"")))
            return message
        chunks = [message.get("body", b"")]
        size = len(chunks[0])
        while True:
            self._check_size(size)
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False):
                self._check_size(size)
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise _TooLargeError

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        logger.info("refused a %s (STS_MAX_BODY_BYTES=%d)", what, self.max_bytes)
        await error_response(
            413,
            ErrorCode.FRAGMENT_TOO_LARGE,
            f"request body: {what} exceeds the limit of {self.max_bytes} bytes "
            "(STS_MAX_BODY_BYTES); send shorter fragments",
            headers=_CLOSE,
        )(scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class InflightLimitMiddleware:
    """Answer 429 ``QUEUE_FULL`` when `limit` requests to `path` are already in flight.

    Placed inside `BodyLimitMiddleware`, so a request counts only once its body has arrived.

    Args:
        app: The wrapped ASGI application.
        path: The limited route (other routes, e.g. health, are never limited).
        limit: Most concurrent requests to `path`.
    """

    def __init__(self, app: ASGIApp, path: str, limit: int) -> None:
        self.app = app
        self.path = path
        self.limit = limit
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            await error_response(
                429,
                ErrorCode.QUEUE_FULL,
                f"{self.inflight} requests already in flight, the limit is {self.limit} "
                "(STS_MAX_INFLIGHT); retry later",
                headers=_RETRY_LATER,
            )(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
