"""Bad input gets a 4xx contract ErrorResponse naming what is wrong; never a 5xx."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_utils.contract import PROCESS_PATH, ErrorCode, ErrorResponse, ProcessResponse
from sts_service.app import create_app
from sts_service.config import StsSettings


@pytest.fixture(autouse=True)
def _no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No bad input may reach the catch-all handler (which logs "unhandled error")."""
    with caplog.at_level(logging.ERROR):
        yield
    unhandled = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert not unhandled


def error_of(response: httpx.Response, status: int, code: ErrorCode) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.code is code
    assert error.retryable is False
    assert error.stage == "request"
    return error.message


async def post_raw(
    client: httpx.AsyncClient, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return await client.post(PROCESS_PATH, content=content, headers={"content-type": content_type})


@pytest.mark.parametrize("content", [b"{", b'{"fragment_id": }', b"\xff\xfe", b"nul", b"[1,]"])
async def test_invalid_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    message = error_of(await post_raw(client, content), 400, ErrorCode.INVALID_REQUEST)
    assert "not valid JSON" in message


async def test_empty_body_names_the_body(client: httpx.AsyncClient) -> None:
    message = error_of(await post_raw(client, b""), 422, ErrorCode.INVALID_REQUEST)
    assert message == "request body: Field required"


@pytest.mark.parametrize(
    "field", ["fragment_id", "stream_id", "sequence_number", "audio", "config"]
)
async def test_missing_field_is_named(
    client: httpx.AsyncClient, make_body: Callable[..., Any], field: str
) -> None:
    body = make_body()
    del body[field]
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_REQUEST)
    assert message == f"{field}: Field required"


@pytest.mark.parametrize(
    ("path", "value", "code", "expected"),
    [
        (("sequence_number",), "three", ErrorCode.INVALID_REQUEST, "sequence_number: "),
        (("sequence_number",), -1, ErrorCode.INVALID_REQUEST, "sequence_number: "),
        (("fragment_id",), "", ErrorCode.INVALID_REQUEST, "fragment_id: "),
        (("stream_id",), "has space", ErrorCode.INVALID_REQUEST, "stream_id: "),
        (
            ("config", "target_language"),
            "ES!",
            ErrorCode.INVALID_REQUEST,
            "config.target_language: ",
        ),
        (("config", "voice"), "v" * 65, ErrorCode.INVALID_REQUEST, "config.voice: "),
        (("config",), "en->es", ErrorCode.INVALID_REQUEST, "config: "),
        (("audio", "channels"), "two", ErrorCode.INVALID_AUDIO, "audio.channels: "),
        (("audio",), [], ErrorCode.INVALID_AUDIO, "audio: "),
        (("surprise",), 1, ErrorCode.INVALID_REQUEST, "surprise: Extra inputs are not permitted"),
        (("audio", "bitrate"), 1, ErrorCode.INVALID_AUDIO, "audio.bitrate: Extra inputs"),
    ],
)
async def test_wrong_field_is_named(
    client: httpx.AsyncClient,
    make_body: Callable[..., Any],
    path: tuple[str, ...],
    value: object,
    code: ErrorCode,
    expected: str,
) -> None:
    body = make_body()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, code)
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    "data",
    # "AAAA=" and "AAAA====" (excess padding) used to pass validation and then give a 500.
    ["not base64!", "AAA", "QUJ", "ÄÖÜ", "AA==AA==", "0/0", "AAAA=", "AAAA====", "AB=="],
)
async def test_invalid_base64_is_named(
    client: httpx.AsyncClient, make_body: Callable[..., Any], data: str
) -> None:
    body = make_body()
    body["audio"]["data_base64"] = data
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_AUDIO)
    assert message.startswith("audio.data_base64: data_base64 is not valid base64")


@pytest.mark.parametrize(("size", "channels"), [(3, 1), (1, 1), (6, 2), (3202, 2)])
async def test_partial_frames_are_refused(
    client: httpx.AsyncClient, make_body: Callable[..., Any], size: int, channels: int
) -> None:
    body = make_body(b"\x01" * size, channels=channels)
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_AUDIO)
    assert message.startswith("audio: ")
    assert f"{size} bytes, not a whole number of {2 * channels}-byte frames" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("encoding", "pcm_f32le", "audio.encoding: Input should be 'pcm_s16le'"),
        ("encoding", "mp3", "audio.encoding: Input should be 'pcm_s16le'"),
        ("sample_rate_hz", 12345, "audio.sample_rate_hz: sample rate 12345 Hz is not supported"),
        ("sample_rate_hz", 0, "audio.sample_rate_hz: sample rate 0 Hz is not supported"),
        ("channels", 3, "audio.channels: channel count 3 is not supported"),
        ("channels", 0, "audio.channels: channel count 0 is not supported"),
    ],
)
async def test_unsupported_format_rate_or_channels(
    client: httpx.AsyncClient,
    make_body: Callable[..., Any],
    field: str,
    value: object,
    expected: str,
) -> None:
    body = make_body()
    body["audio"][field] = value
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_AUDIO)
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (999, "greater than or equal to 1000"),
        (30001, "less than or equal to 30000"),
        (0, "greater than or equal to 1000"),
        ("soon", "valid integer"),
        (1.5, "valid integer"),
    ],
)
async def test_timeout_ms_out_of_range(
    client: httpx.AsyncClient, make_body: Callable[..., Any], value: object, expected: str
) -> None:
    message = error_of(
        await client.post(PROCESS_PATH, json=make_body(timeout_ms=value)),
        422,
        ErrorCode.INVALID_REQUEST,
    )
    assert message.startswith("timeout_ms: ") and expected in message


async def test_several_problems_are_all_named(
    client: httpx.AsyncClient, make_body: Callable[..., Any]
) -> None:
    body = make_body(timeout_ms=5, sequence_number=-2)
    body["audio"]["channels"] = 9
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_REQUEST)
    for field in ("timeout_ms", "sequence_number", "audio.channels"):
        assert field in message


async def test_many_problems_are_summarised(client: httpx.AsyncClient) -> None:
    body = {f"extra_{n}": n for n in range(10)}
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_REQUEST)
    assert "more problem(s)" in message


@pytest.mark.parametrize(
    ("content", "content_type"), [(b"hello", "text/plain"), (b"<a/>", "application/xml")]
)
async def test_non_json_content_type(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    message = error_of(
        await post_raw(client, content, content_type), 422, ErrorCode.INVALID_REQUEST
    )
    assert message.startswith("request body: ")


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert "no route /v2/process" in error_of(
        await client.post("/v2/process", json={}), 404, ErrorCode.INVALID_REQUEST
    )
    assert "GET is not allowed" in error_of(
        await client.get(PROCESS_PATH), 405, ErrorCode.INVALID_REQUEST
    )


async def test_body_over_the_limit_is_413(
    make_client: Callable[..., Any], make_body: Callable[..., Any], make_pcm: Callable[..., Any]
) -> None:
    body = json.dumps(make_body(make_pcm(16000))).encode()
    async with make_client(max_body_bytes=len(body) - 1) as client:
        message = error_of(await post_raw(client, body), 413, ErrorCode.FRAGMENT_TOO_LARGE)
        assert f"{len(body)} bytes" in message
        within = await post_raw(client, body[: len(body) - 1])
        assert within.status_code == 400  # cut JSON: read and parsed, not refused for size


async def test_default_limit_is_ten_megabytes(client: httpx.AsyncClient) -> None:
    big = b"x" * 10_000_001
    error_of(await post_raw(client, big), 413, ErrorCode.FRAGMENT_TOO_LARGE)


async def test_chunked_body_over_the_limit_is_413(make_client: Callable[..., Any]) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b" " * 1000

    async with make_client(max_body_bytes=10_000) as client:
        response = await client.post(
            PROCESS_PATH, content=chunks(), headers={"content-type": "application/json"}
        )
    assert "chunked" in error_of(response, 413, ErrorCode.FRAGMENT_TOO_LARGE)
    assert pulled < 20


# --- property: random request bodies never give a 5xx ----------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
VALID_BODY = {
    "fragment_id": "f",
    "stream_id": "s",
    "sequence_number": 1,
    "audio": {
        "encoding": "pcm_s16le",
        "sample_rate_hz": 16000,
        "channels": 1,
        "data_base64": base64.b64encode(b"\x10\x00" * 160).decode(),
    },
    "config": {"source_language": "en", "target_language": "es"},
    "timeout_ms": 1000,
}
FIELD_PATHS = [
    ("fragment_id",),
    ("stream_id",),
    ("sequence_number",),
    ("audio",),
    ("audio", "encoding"),
    ("audio", "sample_rate_hz"),
    ("audio", "channels"),
    ("audio", "data_base64"),
    ("config",),
    ("config", "source_language"),
    ("config", "target_language"),
    ("config", "voice"),
    ("timeout_ms",),
    ("unexpected",),
]


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    body = copy.deepcopy(VALID_BODY)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(FIELD_PATHS))
        target: Any = body
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        if draw(st.booleans()):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(JSON_VALUES)
    return json.dumps(body).encode()


RANDOM_BODIES = (
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | mutated_bodies()
)


def test_random_bodies_never_give_a_5xx() -> None:
    app = create_app(StsSettings())
    loop = asyncio.new_event_loop()
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://sts.test")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(RANDOM_BODIES, st.sampled_from(["application/json", "text/plain", ""]))
    def check(content: bytes, content_type: str) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = loop.run_until_complete(
            client.post(PROCESS_PATH, content=content, headers=headers)
        )
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            ProcessResponse.model_validate_json(response.content)
        else:
            assert 400 <= response.status_code < 500
            error = ErrorResponse.model_validate_json(response.content).error
            assert error.code in (ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_AUDIO)
            assert error.message

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


async def test_a_huge_sequence_number_is_refused(
    client: httpx.AsyncClient, make_body: Callable[..., Any]
) -> None:
    # It used to be accepted and echoed back, all 4,001 digits.
    body = make_body(sequence_number=int("9" * 4001))
    message = error_of(await client.post(PROCESS_PATH, json=body), 422, ErrorCode.INVALID_REQUEST)
    assert message.startswith("sequence_number: Input should be less than or equal to"), message


async def test_integral_floats_are_accepted_as_the_published_schema_allows(
    client: httpx.AsyncClient, make_body: Callable[..., Any]
) -> None:
    body = make_body(sequence_number=510511.0, timeout_ms=8000.0)
    body["audio"]["channels"] = 1.0
    response = await client.post(PROCESS_PATH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "success"
    assert answer["sequence_number"] == 510511 and '"sequence_number":510511,' in response.text
