"""Pure ASGI middleware: a request body size limit and an in-flight request limit.

Both answer with a contract `ErrorResponse` before the application reads the body, so an
oversized or surplus request costs almost nothing.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared_utils.contract import ErrorCode
from sts_service.errors import error_body

logger = logging.getLogger(__name__)


async def _send_error(
    send: Send,
    status: int,
    code: ErrorCode,
    message: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = error_body(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Answer 413 ``FRAGMENT_TOO_LARGE`` to a request body larger than `max_bytes`.

    A declared ``Content-Length`` over the limit is refused at once, without reading the body.
    A chunked body (no ``Content-Length``) is read only until it passes the limit. The 413
    closes the connection, so the unread rest of the body is never consumed.

    Args:
        app: The wrapped ASGI application.
        max_bytes: Largest accepted body, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(send, f"declared Content-Length of {declared} bytes")
                return
            await self.app(scope, receive, send)
            return
        if not chunked:
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, f"chunked body of more than {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str) -> None:
        logger.info("refused a %s (STS_MAX_BODY_BYTES=%d)", what, self.max_bytes)
        await _send_error(
            send,
            413,
            ErrorCode.FRAGMENT_TOO_LARGE,
            f"request body: {what} exceeds the limit of {self.max_bytes} bytes "
            "(STS_MAX_BODY_BYTES); send shorter fragments",
            [(b"connection", b"close")],
        )


class InflightLimitMiddleware:
    """Answer 429 ``QUEUE_FULL`` when `limit` requests to `path` are already in flight.

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
            await _send_error(
                send,
                429,
                ErrorCode.QUEUE_FULL,
                f"{self.inflight} requests already in flight, the limit is {self.limit} "
                "(STS_MAX_INFLIGHT); retry later",
                [(b"retry-after", b"1")],
            )
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
