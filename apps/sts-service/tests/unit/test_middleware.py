from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared_utils.contract import ErrorResponse
from sts_service.middleware import BodyLimitMiddleware, InflightLimitMiddleware


class EchoApp:
    """Reads the whole body and answers 200 with its length."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


PATH = "/v1/process"


def limit(
    app: ASGIApp, max_bytes: int = 100, max_receiving: int = 4, timeout_s: float = 5.0
) -> BodyLimitMiddleware:
    return BodyLimitMiddleware(app, PATH, max_bytes, max_receiving, timeout_s)


def http_scope(headers: list[tuple[bytes, bytes]], path: str = PATH) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


class Feed:
    """An ASGI receive that hands out `chunks` and counts how many were pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __call__(self) -> Message:
        index = self.pulled
        self.pulled += 1
        if index >= len(self.chunks):
            return {"type": "http.disconnect"}
        return {
            "type": "http.request",
            "body": self.chunks[index],
            "more_body": index < len(self.chunks) - 1,
        }


async def call(app: ASGIApp, scope: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def status_and_error(sent: list[Message]) -> tuple[int, ErrorResponse, dict[bytes, bytes]]:
    start, body = sent
    return (
        start["status"],
        ErrorResponse.model_validate_json(body["body"]),
        dict(start["headers"]),
    )


async def test_declared_length_over_limit_is_refused_without_reading() -> None:
    inner = EchoApp()
    feed = Feed([b"x" * 200])
    sent = await call(
        limit(inner),
        http_scope([(b"content-length", b"200")]),
        feed,
    )
    status, error, headers = status_and_error(sent)
    assert status == 413
    assert error.error.code.value == "FRAGMENT_TOO_LARGE"
    assert not error.error.retryable
    assert "200 bytes" in error.error.message and "100 bytes" in error.error.message
    assert "STS_MAX_BODY_BYTES" in error.error.message
    assert headers[b"connection"] == b"close"
    assert feed.pulled == 0 and inner.calls == 0


async def test_chunked_body_is_refused_once_past_the_limit() -> None:
    inner = EchoApp()
    feed = Feed([b"x" * 60] * 100)
    sent = await call(
        limit(inner),
        http_scope([(b"transfer-encoding", b"chunked")]),
        feed,
    )
    status, error, _ = status_and_error(sent)
    assert status == 413
    assert "chunked body of more than 100 bytes" in error.error.message
    assert feed.pulled == 2  # 120 bytes read of 6000
    assert inner.calls == 0


async def test_chunked_body_within_the_limit_is_replayed_whole() -> None:
    inner = EchoApp()
    sent = await call(
        limit(inner),
        http_scope([(b"transfer-encoding", b"chunked")]),
        Feed([b"a" * 40, b"b" * 40, b"c" * 20]),
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100"


async def test_bodies_within_the_limit_pass_untouched() -> None:
    inner = EchoApp()
    sent = await call(
        limit(inner),
        http_scope([(b"content-length", b"100")]),
        Feed([b"x" * 100]),
    )
    assert sent[1]["body"] == b"100"
    sent = await call(limit(inner), http_scope([]), Feed([b""]))
    assert sent[1]["body"] == b"0"
    sent = await call(
        limit(inner),
        http_scope([(b"content-length", b"not-a-number")]),
        Feed([b"xy"]),
    )
    assert sent[1]["body"] == b"2"


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent for a lifespan scope")

    await limit(app, 1)({"type": "lifespan"}, Feed([]), send)
    await InflightLimitMiddleware(app, "/p", 1)({"type": "lifespan"}, Feed([]), send)
    assert seen == ["lifespan", "lifespan"]


async def test_inflight_limit_answers_queue_full() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/v1/process":
            entered.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limiter = InflightLimitMiddleware(slow, path="/v1/process", limit=1)
    first = asyncio.ensure_future(call(limiter, http_scope([]), Feed([b""])))
    await entered.wait()
    assert limiter.inflight == 1

    status, error, headers = status_and_error(await call(limiter, http_scope([]), Feed([b""])))
    assert status == 429
    assert error.error.code.value == "QUEUE_FULL" and error.error.retryable
    assert "STS_MAX_INFLIGHT" in error.error.message
    assert headers[b"retry-after"] == b"1"

    # Other routes are never limited.
    other = await call(limiter, http_scope([], path="/v1/health"), Feed([b""]))
    assert other[0]["status"] == 200 and other[1]["body"] == b"ok"

    release.set()
    assert (await first)[1]["body"] == b"ok"
    assert limiter.inflight == 0


class Trickle:
    """An ASGI receive that sends `first`, then never completes the body (a slow client)."""

    def __init__(self, first: bytes = b"{") -> None:
        self.first = first
        self.pulled = 0

    async def __call__(self) -> Message:
        self.pulled += 1
        if self.pulled == 1:
            return {"type": "http.request", "body": self.first, "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")


async def test_a_body_not_received_in_time_gets_408_and_frees_its_slot() -> None:
    inner = EchoApp()
    middleware = limit(inner, max_receiving=1, timeout_s=0.05)
    sent = await asyncio.wait_for(
        call(middleware, http_scope([(b"content-length", b"50")]), Trickle()), 5
    )
    status, error, headers = status_and_error(sent)
    assert status == 408
    assert error.error.code.value == "TIMEOUT" and error.error.stage == "request"
    assert "STS_BODY_TIMEOUT_S" in error.error.message
    assert headers[b"connection"] == b"close"
    assert inner.calls == 0 and middleware.receiving == 0
    # The slot is free again: the next body is received and processed.
    sent = await call(middleware, http_scope([]), Feed([b"ab"]))
    assert sent[1]["body"] == b"2"


async def test_past_max_receiving_429_comes_before_any_body_is_read() -> None:
    inner = EchoApp()
    middleware = limit(inner, max_receiving=2)
    held = [
        asyncio.ensure_future(
            call(middleware, http_scope([(b"transfer-encoding", b"chunked")]), Trickle())
        )
        for _ in range(2)
    ]
    while middleware.receiving < 2:
        await asyncio.sleep(0)
    for headers in ([(b"transfer-encoding", b"chunked")], [(b"content-length", b"10")]):
        feed = Feed([b"x" * 10])
        status, error, response_headers = status_and_error(
            await call(middleware, http_scope(headers), feed)
        )
        assert status == 429 and error.error.code.value == "QUEUE_FULL"
        assert "STS_MAX_RECEIVING" in error.error.message
        assert response_headers[b"retry-after"] == b"1"
        assert response_headers[b"connection"] == b"close"
        assert feed.pulled == 0
    # Only the limited route counts: health has no body to receive.
    other = await call(middleware, http_scope([], path="/v1/health"), Feed([b""]))
    assert other[0]["status"] == 200
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert middleware.receiving == 0 and inner.calls == 1


async def test_a_body_still_arriving_holds_no_processing_slot() -> None:
    inner = EchoApp()
    inflight = InflightLimitMiddleware(inner, path=PATH, limit=1)
    stack = limit(inflight, max_receiving=8, timeout_s=5)
    slow = asyncio.ensure_future(call(stack, http_scope([]), Trickle()))
    while stack.receiving < 1:
        await asyncio.sleep(0)
    sent = await call(stack, http_scope([(b"content-length", b"3")]), Feed([b"abc"]))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"3"
    assert inflight.inflight == 0 and stack.receiving == 1
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)


async def test_a_client_leaving_mid_body_gets_no_answer() -> None:
    inner = EchoApp()
    middleware = limit(inner)
    sent = await call(middleware, http_scope([]), Feed([]))
    assert sent == [] and inner.calls == 0 and middleware.receiving == 0


async def test_the_app_gets_the_whole_body_then_the_real_receive() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        messages.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(limit(app), http_scope([]), Feed([b"ab", b"cd"]))
    assert messages == [
        {"type": "http.request", "body": b"abcd", "more_body": False},
        {"type": "http.disconnect"},
    ]
