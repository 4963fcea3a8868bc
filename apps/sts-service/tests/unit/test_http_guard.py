"""The request head guard (`sts_service.http_guard`) in process, on a fake transport; and the
uvicorn internals it relies on, so an upgrade that moves one fails here by name.

The real server is attacked in tests/integration; these pin each branch quickly.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from uvicorn.config import Config
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shared_utils.contract import ErrorResponse
from sts_service.app import create_app
from sts_service.config import StsSettings
from sts_service.http_guard import FROM_ENVIRONMENT, GuardedHttpProtocol, guarded_http_protocol


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


@pytest.mark.parametrize("head_kb", [17, 40, 65])
async def test_a_big_head_sent_in_one_write_gets_431(head_kb: int) -> None:
    # The read that completes a head counts too: these used to get 200.
    protocol, transport = connect()
    big = b"x-big: " + b"a" * (head_kb * 1024) + b"\r\n"
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\nhost: sts\r\n" + big + b"\r\n")
    await asyncio.sleep(0.05)
    status, error = answer(transport)
    assert status == 431 and "16384 bytes" in error.error.message
    protocol.connection_lost(None)


async def test_a_head_end_split_across_two_reads_is_found() -> None:
    protocol, transport = connect(max_header_bytes=1024)
    body = b"{" + b" " * 5000 + b"}"
    protocol.data_received(b"POST /v1/nowhere HTTP/1.1\r\ncontent-length: %d\r\n\r" % len(body))
    protocol.data_received(b"\n" + body)
    await asyncio.sleep(0.05)
    assert transport.written.startswith(b"HTTP/1.1 404")
    protocol.connection_lost(None)


async def test_a_head_of_exactly_the_limit_passes() -> None:
    protocol, transport = connect(max_header_bytes=1024)
    start = b"GET /v1/health HTTP/1.1\r\nx-pad: "
    head = start + b"a" * (1024 - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == 1024
    protocol.data_received(head)
    await asyncio.sleep(0.05)
    assert transport.written.startswith(b"HTTP/1.1 200")
    protocol.connection_lost(None)


def test_reload_mode_imports_the_protocol_with_the_environment_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STS_MAX_HEADER_BYTES", "2048")
    monkeypatch.setenv("STS_HEADER_TIMEOUT_S", "2.5")
    protocol = import_from_string(f"sts_service.http_guard:{FROM_ENVIRONMENT}")
    assert issubclass(protocol, GuardedHttpProtocol)
    assert (protocol.max_head_bytes, protocol.head_timeout_s) == (2048, 2.5)


def test_an_unknown_attribute_of_the_guard_module_is_an_attribute_error() -> None:
    import sts_service.http_guard as guard

    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = guard.NoSuchThing


@pytest.mark.parametrize(
    "hook",
    [
        "connection_made",
        "connection_lost",
        "data_received",
        "on_headers_complete",
        "on_response_complete",
    ],
)
def test_uvicorn_still_has_the_hooks_the_guard_overrides(hook: str) -> None:
    # If uvicorn renames or drops one, the guard silently stops guarding: fail here instead.
    method = getattr(HttpToolsProtocol, hook, None)
    assert callable(method), f"uvicorn's HttpToolsProtocol has no {hook}: update http_guard"
    assert hook in vars(HttpToolsProtocol), f"{hook} moved out of HttpToolsProtocol"


async def test_uvicorn_still_has_the_attributes_the_guard_reads() -> None:
    protocol, _transport = connect()
    for name in ("transport", "loop", "server_state"):
        assert hasattr(protocol, name), f"uvicorn's HttpToolsProtocol has no {name}"
    assert isinstance(protocol.server_state.default_headers, list)  # type: ignore[attr-defined]  # set by uvicorn on the live protocol
    assert "cycle" in inspect.getsource(HttpToolsProtocol.on_headers_complete)
    protocol.data_received(b"GET /v1/health HTTP/1.1\r\nhost: sts\r\n\r\n")
    await asyncio.sleep(0.05)
    assert protocol.cycle.response_complete  # type: ignore[attr-defined]  # set per request
    protocol.connection_lost(None)
