"""Bearer-token check: once the service leaves loopback, only holders of a token may use it.

With no token configured (`STS_AUTH_TOKENS` empty, the default) every request passes. With
tokens, a request outside the open paths (the health route and /metrics, for probes and
scrapers) must carry ``Authorization: Bearer <token>`` with one of them; a missing or wrong
token gets 401 with the contract's error body and ``WWW-Authenticate: Bearer``. Tokens are
compared in constant time, each one every time, so the answer's timing does not tell how much
of a guess was right; a token is never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from shared_utils.contract import ErrorCode
from sts_service.errors import error_response

logger = logging.getLogger(__name__)

_SCHEME = b"bearer"


class BearerAuthMiddleware:
    """Answer 401 to a request without one of `tokens`, except on `open_paths`.

    Args:
        app: The wrapped ASGI application.
        tokens: Accepted bearer tokens; empty disables the check.
        open_paths: Paths served without a token (exact match).
    """

    def __init__(self, app: ASGIApp, tokens: Iterable[str], open_paths: Iterable[str]) -> None:
        self.app = app
        self.tokens = tuple(token.encode() for token in tokens)
        self.open_paths = frozenset(open_paths)

    def _accepts(self, presented: bytes) -> bool:
        matched = False
        for token in self.tokens:  # no early exit: every token is compared, every time
            matched |= hmac.compare_digest(presented, token)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http" or not self.tokens or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if header is None:
            await _unauthorized(
                scope, receive, send, "missing bearer token: send `Authorization: Bearer <token>`"
            )
            return
        scheme, _, presented = header.strip().partition(b" ")
        if scheme.lower() != _SCHEME or not presented.strip():
            await _unauthorized(
                scope, receive, send, "the Authorization header is not `Bearer <token>`"
            )
            return
        if not self._accepts(presented.strip()):
            logger.warning("rejected %s %s: wrong bearer token", scope["method"], scope["path"])
            await _unauthorized(scope, receive, send, "the bearer token is not valid")
            return
        await self.app(scope, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    response = error_response(
        401, ErrorCode.INVALID_REQUEST, message, headers={"www-authenticate": "Bearer"}
    )
    await response(scope, receive, send)
