"""The real server as a process: start on a free port, drive it over the wire, stop it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared_utils.contract import (
    HEALTH_PATH,
    PROCESS_PATH,
    ErrorCode,
    ErrorResponse,
    HealthResponse,
    ProcessResponse,
    ProcessStatus,
)

pytestmark = pytest.mark.slow


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str

    def stop(self, signum: signal.Signals) -> tuple[int, str]:
        self.process.send_signal(signum)
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


def start(port: int, module: str = "sts_service", **env: str) -> Server:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    environment.update(STS_PORT=str(port), STS_LOG_FORMAT="json", **env)
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"server exited {process.returncode}: {output}")
        try:
            if httpx.get(server.base_url + HEALTH_PATH, timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("server did not answer its health check within 30 s")


def log_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def server(free_port: Callable[[], int]) -> Iterator[Server]:
    running = start(free_port())
    yield running
    code, err = running.stop(signal.SIGINT)
    assert code == 0, err
    messages = [line["message"] for line in log_lines(err)]
    port = running.base_url.rsplit(":", 1)[1]
    assert f"sts-service listening on http://127.0.0.1:{port}" in messages
    assert "sts-service stopped (SIGINT)" in messages


def test_health_over_the_wire(server: Server) -> None:
    response = httpx.get(server.base_url + HEALTH_PATH)
    health = HealthResponse.model_validate_json(response.content)
    assert health.status.value == "healthy"
    assert health.service == "sts-service"


def test_process_over_the_wire(
    server: Server, make_body: Callable[..., Any], make_pcm: Callable[..., Any]
) -> None:
    pcm = make_pcm(16000)
    body = make_body(pcm, sequence_number=5)
    response = httpx.post(server.base_url + PROCESS_PATH, json=body)
    result = ProcessResponse.model_validate_json(response.content)
    assert result.status is ProcessStatus.SUCCESS
    assert result.transcript == "[echo] stream=stream-a seq=5"
    assert result.audio is not None and result.audio.pcm_bytes() == pcm


async def test_concurrent_requests_over_the_wire(
    server: Server, make_body: Callable[..., Any], make_pcm: Callable[..., Any]
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    PROCESS_PATH,
                    json=make_body(make_pcm(1600 + n), sequence_number=n, fragment_id=f"f{n}"),
                )
                for n in range(24)
            )
        )
    results = [ProcessResponse.model_validate_json(r.content) for r in responses]
    assert [r.sequence_number for r in results] == list(range(24))
    assert all(r.status is ProcessStatus.SUCCESS for r in results)
    assert [r.audio.frame_count() for r in results if r.audio] == [1600 + n for n in range(24)]


def test_bad_json_over_the_wire(server: Server) -> None:
    response = httpx.post(
        server.base_url + PROCESS_PATH,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert (
        ErrorResponse.model_validate_json(response.content).error.code is ErrorCode.INVALID_REQUEST
    )


def test_oversized_body_is_refused_over_the_wire(server: Server) -> None:
    response = httpx.post(
        server.base_url + PROCESS_PATH,
        content=b"x" * 10_000_001,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    error = ErrorResponse.model_validate_json(response.content).error
    assert error.code is ErrorCode.FRAGMENT_TOO_LARGE


def test_oversized_chunked_body_is_refused_over_the_wire(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b" " * 100_000

    response = httpx.post(
        server.base_url + PROCESS_PATH,
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "chunked" in ErrorResponse.model_validate_json(response.content).error.message
    # The server still serves afterwards.
    assert httpx.get(server.base_url + HEALTH_PATH).status_code == 200


async def test_queue_full_and_sigterm(
    make_body: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    running = start(
        free_port(), STS_MAX_INFLIGHT="1", STS_FAULT_ENABLED="true", STS_FAULT_LATENCY_MS="400"
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            first = asyncio.ensure_future(
                client.post(PROCESS_PATH, json=make_body(sequence_number=0))
            )
            await asyncio.sleep(0.15)
            second = await client.post(PROCESS_PATH, json=make_body(sequence_number=1))
            assert second.status_code == 429
            error = ErrorResponse.model_validate_json(second.content).error
            assert error.code is ErrorCode.QUEUE_FULL and error.retryable
            assert (await first).status_code == 200
    finally:
        code, err = running.stop(signal.SIGTERM)
    assert code == 0, err
    assert "sts-service stopped (SIGTERM)" in [line["message"] for line in log_lines(err)]


def test_python_m_sts_service_main_also_starts(free_port: Callable[[], int]) -> None:
    running = start(free_port(), "sts_service.main")
    code, err = running.stop(signal.SIGTERM)
    assert code == 0, err


def test_bad_settings_exit_2_with_one_line() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    environment["STS_TTS_BACKEND"] = "nope"
    completed = subprocess.run(
        [sys.executable, "-m", "sts_service"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert (
        "STS_TTS_BACKEND" in completed.stderr and "unknown tts backend 'nope'" in completed.stderr
    )


# ------------------------------------------------------------------ hostile clients
# Clients that hold connections or send too much. Each case used to deny service to everyone
# else: slow uploads held every processing slot, an idle or trickling connection stayed open
# forever, and a header of megabytes cost seconds of CPU.

BODY_TIMEOUT_S = 1.0
HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1


@pytest.fixture(scope="module")
def guarded(free_port: Callable[[], int]) -> Iterator[Server]:
    running = start(
        free_port(),
        STS_MAX_INFLIGHT="2",
        STS_MAX_RECEIVING="8",
        STS_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        STS_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        STS_KEEP_ALIVE_TIMEOUT_S=str(KEEP_ALIVE_S),
        STS_MAX_HEADER_BYTES="4096",
    )
    yield running
    code, err = running.stop(signal.SIGTERM)
    assert code == 0, err


def connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Read until the server closes: (status, body); (0, b"") for a silent close."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    if not data:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def error_of(body: bytes) -> ErrorResponse:
    return ErrorResponse.model_validate_json(body)


def test_slow_uploads_hold_no_processing_slot_and_time_out(
    guarded: Server, make_body: Callable[..., dict[str, Any]]
) -> None:
    # Twice STS_MAX_INFLIGHT clients send their head and one byte of body, then nothing.
    slow = [connect(guarded) for _ in range(4)]
    for sock in slow:
        sock.sendall(
            f"POST {PROCESS_PATH} HTTP/1.1\r\nHost: sts\r\ncontent-type: application/json\r\n"
            "content-length: 5000\r\n\r\n{".encode()
        )
    time.sleep(0.2)
    started = time.monotonic()
    response = httpx.post(guarded.base_url + PROCESS_PATH, json=make_body(), timeout=10)
    assert response.status_code == 200, response.text
    for sock in slow:
        status, body = read_answer(sock)
        sock.close()
        assert status == 408
        error = error_of(body).error
        assert error.code is ErrorCode.TIMEOUT and "STS_BODY_TIMEOUT_S" in error.message
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5


def test_a_huge_header_gets_431_at_once(guarded: Server) -> None:
    with connect(guarded) as sock:
        sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: sts\r\nX-Big: ".encode())
        started = time.monotonic()
        try:
            for _ in range(64):  # up to 4 MB; the server stops reading long before
                sock.sendall(b"a" * 65536)
        except OSError:
            pass  # closed by the server mid-send: expected
        status, body = read_answer(sock)
    assert status == 431
    assert "STS_MAX_HEADER_BYTES" in error_of(body).error.message
    assert time.monotonic() - started < HEADER_TIMEOUT_S
    assert httpx.get(guarded.base_url + HEALTH_PATH).status_code == 200


@pytest.mark.parametrize("head_kb", [17, 65])
def test_a_big_head_sent_in_one_write_gets_431(guarded: Server, head_kb: int) -> None:
    with connect(guarded) as sock:
        big = b"X-Big: " + b"a" * (head_kb * 1024) + b"\r\n\r\n"
        sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: sts\r\n".encode() + big)
        status, body = read_answer(sock)
    assert status == 431
    assert "STS_MAX_HEADER_BYTES" in error_of(body).error.message


def test_a_connection_that_sends_nothing_is_closed(guarded: Server) -> None:
    with connect(guarded) as sock:
        started = time.monotonic()
        assert read_answer(sock) == (0, b"")
    assert HEADER_TIMEOUT_S * 0.8 < time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_head_sent_a_byte_at_a_time_gets_408(guarded: Server) -> None:
    with connect(guarded) as sock:
        started = time.monotonic()
        try:
            for byte in f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: sts\r\n".encode():
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass
        status, body = read_answer(sock)
    assert status == 408
    assert "STS_HEADER_TIMEOUT_S" in error_of(body).error.message
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_an_idle_keep_alive_connection_is_closed(guarded: Server) -> None:
    with connect(guarded) as sock:
        sock.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: sts\r\n\r\n".encode())
        started = time.monotonic()
        status, body = read_answer(sock)
    assert status == 200 and json.loads(body)["status"] == "healthy"
    assert time.monotonic() - started < KEEP_ALIVE_S + 3


def test_past_max_connections_the_server_answers_503(free_port: Callable[[], int]) -> None:
    running = start(free_port(), STS_MAX_CONNECTIONS="3")
    idle = [connect(running) for _ in range(3)]
    try:
        time.sleep(0.2)
        assert httpx.get(running.base_url + HEALTH_PATH).status_code == 503
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(running.base_url + HEALTH_PATH).status_code == 200
    finally:
        code, err = running.stop(signal.SIGTERM)
    assert code == 0, err
