"""The request head guard (`GuardedHttpProtocol`) in process, on a fake transport.

The real server is attacked in tests/integration; these pin each branch quickly.
"""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from shared_utils.contract import ErrorResponse
from sts_service.app import create_app
from sts_service.config import StsSettings
from sts_service.main import guarded_http_protocol


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes; records whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connect(**settings: object) -> tuple[asyncio.Protocol, FakeTransport]:
    config = StsSettings.model_validate(settings)
    protocol_class = guarded_http_protocol(config)
    protocol = protocol_class(
        config=Config(create_app(config)),
        server_state=ServerState(),
        app_state={},
        _loop=asyncio.get_running_loop(),
    )
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def answer(transport: FakeTransport) -> tuple[int, ErrorResponse]:
    head, _, body = transport.written.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    return int(head.split(b" ", 2)[1]), ErrorResponse.model_validate_json(body)


async def test_a_head_past_the_limit_gets_431_and_is_closed() -> None:
    protocol, transport = connect(max_header_bytes=1024)
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\nx-big: ")
    for _ in range(3):
        if not transport.closed:
            protocol.data_received(b"a" * 600)
    assert transport.closed
    status, error = answer(transport)
    assert status == 431
    assert error.error.code.value == "INVALID_REQUEST"
    assert "1024 bytes" in error.error.message and "STS_MAX_HEADER_BYTES" in error.error.message
    protocol.connection_lost(None)


async def test_a_big_body_arriving_with_its_head_is_not_a_big_head() -> None:
    protocol, transport = connect(max_header_bytes=1024)
    body = b"{" + b" " * 5000 + b"}"
    protocol.data_received(
        b"POST /v1/nowhere HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )
    await asyncio.sleep(0.05)  # the app answers 404 in a task
    assert transport.written.startswith(b"HTTP/1.1 404")
    protocol.connection_lost(None)


async def test_a_silent_connection_is_closed_without_an_answer() -> None:
    protocol, transport = connect(header_timeout_s=0.05)
    await asyncio.sleep(0.2)
    assert transport.closed and transport.written == b""
    protocol.connection_lost(None)


async def test_a_slow_head_gets_408() -> None:
    protocol, transport = connect(header_timeout_s=0.05)
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\n")
    await asyncio.sleep(0.2)
    status, error = answer(transport)
    assert status == 408 and "STS_HEADER_TIMEOUT_S" in error.error.message
    protocol.connection_lost(None)


async def test_the_next_head_after_an_answer_is_timed_too() -> None:
    protocol, transport = connect(header_timeout_s=0.3)
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\nhost: sts\r\n\r\n")
    await asyncio.sleep(0.1)  # answered well within the head timeout
    assert transport.written.startswith(b"HTTP/1.1 200") and not transport.is_closing()
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\n")  # and then nothing more
    await asyncio.sleep(0.6)
    assert transport.is_closing() and b"HTTP/1.1 408" in transport.written
    protocol.connection_lost(None)
