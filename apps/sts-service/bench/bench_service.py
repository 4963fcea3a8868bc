"""Benchmark POST /v1/process against a bare endpoint that does no work (the framework floor).

Run with the package venv: ``make bench`` (or ``.venv/bin/python bench/bench_service.py``).

Both servers run as subprocesses on free ports of 127.0.0.1 under the same uvicorn
configuration (`sts_service.main.uvicorn_config`). The same client drives each with the
same body (a 1 s segment of 16 kHz mono PCM, ~43 kB of JSON) over keep-alive connections at
concurrency 1, 4 and 16 for a bounded number of requests (3 interleaved rounds; each figure
is the median of the rounds), and prints req/s, p50 and p99 side by side with the overhead.

Then it attacks the service as a hostile client would, with the default limits: slow uploads
(a head and a byte of body, then a byte a second), idle connections, heads sent a byte at a
time, and multi-megabyte headers, reconnecting whenever the server closes one. Meanwhile one
client polls /v1/health and four send normal /v1/process requests; the same two loads also
run without the attack, and both are printed: /v1/health p50/p99 and how many normal requests
were answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from shared_utils.contract import HEALTH_PATH, PROCESS_PATH
from sts_service.config import StsSettings
from sts_service.main import uvicorn_config

T = TypeVar("T")

CONCURRENCY = (1, 4, 16)
REQUESTS = 400  # measured per concurrency level, target and round
WARMUP = 40
ROUNDS = 3  # each cell is the median of the rounds
GOAL_P99_OVERHEAD_MS = 10.0
GOAL_RPS = 300.0
# The attack: as many slow uploads as the default STS_MAX_INFLIGHT (which they all used to
# hold), many idle connections, and a few clients with trickling or enormous heads.
SLOW_UPLOADS = 32
IDLE_CONNECTIONS = 200
TRICKLING_HEADS = 4
HUGE_HEADERS = 2
ATTACK_HEALTH_REQUESTS = 2000
ATTACK_PROCESS_CONCURRENCY = 4
ATTACK_PROCESS_EVERY_S = 0.05  # each normal client sends a fragment every 50 ms (live-like)
GOAL_ATTACK_HEALTH_P99_MS = 10.0
ATTACKING = "attacking"  # the attacker process's line once its connections are open
RECONNECT_AFTER_S = 0.1  # a hostile client comes back this soon after the server closes it
_FIXED = b'{"status":"success"}'


def _bare_app() -> FastAPI:
    app = FastAPI()

    @app.get(HEALTH_PATH)
    async def health() -> Response:
        return Response(_FIXED, media_type="application/json")

    @app.post(PROCESS_PATH)
    async def process(request: Request) -> Response:
        await request.body()  # accept the same body, do nothing with it
        return Response(_FIXED, media_type="application/json")

    return app


def _serve_bare(port: int) -> None:
    uvicorn.Server(uvicorn_config(_bare_app(), StsSettings(port=port))).run()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body() -> bytes:
    t = np.arange(16000) / 16000.0
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 220.0 * t)).astype("<i2")
    return json.dumps(
        {
            "fragment_id": "bench-0",
            "stream_id": "bench",
            "sequence_number": 0,
            "audio": {
                "sample_rate_hz": 16000,
                "channels": 1,
                "data_base64": base64.b64encode(tone.tobytes()).decode(),
            },
            "config": {"source_language": "en", "target_language": "es"},
        }
    ).encode()


@dataclass
class Result:
    """Throughput and latency of one target at one concurrency."""

    rps: float
    p50_ms: float
    p99_ms: float


class _Connection:
    """A minimal keep-alive HTTP/1.1 client connection for the load loop.

    httpx costs the client about a millisecond of CPU per request, which on a 2-core machine
    that also runs the server would make the client the bottleneck. This sends pre-built
    request bytes and reads the status line, the headers and a Content-Length body; both
    targets are driven by it, so the comparison stays fair.
    """

    def __init__(self, port: int) -> None:
        self.port = port

    @classmethod
    async def open(cls, port: int) -> _Connection:
        connection = cls(port)
        await connection.connect()
        return connection

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body

    async def status(self, raw: bytes) -> int:
        """The status of one request; 0, and a new connection, when the server closed this one."""
        try:
            return (await self.request(raw))[0]
        except (OSError, asyncio.IncompleteReadError):
            await self.connect()
            return 0

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _raw_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PROCESS_PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _drive(port: int, body: bytes, concurrency: int, total: int) -> Result:
    raw = _raw_request(port, body)
    connections = [await _Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    remaining = WARMUP + total

    async def worker(connection: _Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            warm = remaining >= total
            t0 = time.perf_counter()
            status, answer = await connection.request(raw)
            elapsed = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"port {port}: HTTP {status}: {answer[:200]!r}")
            if not warm:
                latencies.append(elapsed)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    wall = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    latencies.sort()
    measured_wall = wall * total / (total + WARMUP)  # approximate: warm-up share removed
    return Result(
        rps=len(latencies) / measured_wall,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


@dataclass
class LoadResult:
    """/v1/health latency and normal /v1/process answers, measured side by side."""

    health_p50_ms: float
    health_p99_ms: float
    health_failures: int
    process_ok: int
    process_total: int
    process_p99_ms: float


async def _measure_load(port: int, body: bytes) -> LoadResult:
    """Poll health from one connection while normal clients send fragments."""
    health = await _Connection.open(port)
    raw_health = f"GET {HEALTH_PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
    raw_process = _raw_request(port, body)
    latencies: list[float] = []
    statuses: list[int] = []
    process_latencies: list[float] = []
    health_failures = 0
    done = asyncio.Event()

    async def poll_health() -> None:
        nonlocal health_failures
        for _ in range(ATTACK_HEALTH_REQUESTS):
            t0 = time.perf_counter()
            if await health.status(raw_health) == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                health_failures += 1
        done.set()

    async def send_fragments() -> None:
        connection = await _Connection.open(port)
        while not done.is_set():
            t0 = time.perf_counter()
            statuses.append(await connection.status(raw_process))
            elapsed = time.perf_counter() - t0
            process_latencies.append(elapsed)
            await asyncio.sleep(max(0.0, ATTACK_PROCESS_EVERY_S - elapsed))
        await connection.close()

    await asyncio.gather(
        poll_health(), *(send_fragments() for _ in range(ATTACK_PROCESS_CONCURRENCY))
    )
    await health.close()
    latencies.sort()
    process_latencies.sort()
    latencies = latencies or [float("inf")]
    return LoadResult(
        health_p50_ms=statistics.median(latencies) * 1000,
        health_p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        health_failures=health_failures,
        process_ok=statuses.count(200),
        process_total=len(statuses),
        process_p99_ms=process_latencies[int(len(process_latencies) * 0.99)] * 1000,
    )


async def _hold(port: int, stop: asyncio.Event, first: bytes, then: bytes, every_s: float) -> None:
    """One hostile client: send `first`, then `then` every `every_s`; reconnect when closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            writer.write(first)
            while not stop.is_set():
                if then:
                    writer.write(then)
                    await writer.drain()
                closed = asyncio.ensure_future(reader.read(65536))
                await asyncio.wait([closed], timeout=every_s)
                if closed.done():
                    if not closed.result():
                        break  # the server closed it: come back
                else:
                    closed.cancel()
        except (OSError, RuntimeError):  # RuntimeError: uvloop's write to a closed transport
            pass
        finally:
            writer.close()
        await asyncio.sleep(RECONNECT_AFTER_S)


async def _attack(port: int, stop: asyncio.Event) -> None:
    slow_head = (
        f"POST {PROCESS_PATH} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "content-length: 100000\r\n\r\n{"
    ).encode()
    big_head = f"GET {HEALTH_PATH} HTTP/1.1\r\nhost: x\r\nx-big: ".encode()
    await asyncio.gather(
        *(_hold(port, stop, slow_head, b" ", 1.0) for _ in range(SLOW_UPLOADS)),
        *(_hold(port, stop, b"", b"", 1.0) for _ in range(IDLE_CONNECTIONS)),
        *(
            _hold(port, stop, b"GET /v1/health HTTP/1.1\r\n", b"x", 1.0)
            for _ in range(TRICKLING_HEADS)
        ),
        *(_hold(port, stop, big_head, b"a" * 65536, 0.01) for _ in range(HUGE_HEADERS)),
    )


async def _attack_until_stopped(port: int) -> None:
    """The attack, in a process of its own (``--attack PORT``) until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    attack = asyncio.ensure_future(_attack(port, stop))
    await asyncio.sleep(1.0)  # every hostile connection is open and has sent its first bytes
    sys.stdout.write(f"{ATTACKING}\n")
    sys.stdout.flush()
    await attack


async def _run_attack(port: int, body: bytes) -> tuple[LoadResult, LoadResult]:
    """The same load without, then with, the attack running beside it (median of rounds).

    The attackers run in another process, so that their client work does not delay the
    measuring client's event loop: only their effect on the server is measured.
    """
    quiet = [await _measure_load(port, body) for _ in range(ROUNDS)]
    attacker = subprocess.Popen(
        [sys.executable, __file__, "--attack", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Starting Python and its imports takes seconds on a busy machine: measure only
        # once the attacker says its connections are in place.
        assert attacker.stdout is not None
        started = await asyncio.wait_for(asyncio.to_thread(attacker.stdout.readline), 120)
        if started.decode().strip() != ATTACKING:
            error = attacker.stderr.read().decode() if attacker.stderr else ""
            raise RuntimeError(f"the attacker did not start: {error}")
        attacked = [await _measure_load(port, body) for _ in range(ROUNDS)]
        if attacker.poll() is not None:
            error = attacker.stderr.read().decode() if attacker.stderr else ""
            raise RuntimeError(f"the attacker exited early: {error}")
    finally:
        _stop(attacker)
    return _median_load(quiet), _median_load(attacked)


def _median_load(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        health_p50_ms=statistics.median(r.health_p50_ms for r in results),
        health_p99_ms=statistics.median(r.health_p99_ms for r in results),
        health_failures=sum(r.health_failures for r in results),
        process_ok=sum(r.process_ok for r in results),
        process_total=sum(r.process_total for r in results),
        process_p99_ms=statistics.median(r.process_p99_ms for r in results),
    )


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # imports alone take seconds on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(base + HEALTH_PATH, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _run_all(sts: int, bare: int, body: bytes) -> dict[int, tuple[Result, Result]]:
    """Interleave targets and rounds so both see the same machine load; median per cell."""
    rounds: dict[int, tuple[list[Result], list[Result]]] = {c: ([], []) for c in CONCURRENCY}
    for _ in range(ROUNDS):
        for concurrency in CONCURRENCY:
            floor, service = rounds[concurrency]
            floor.append(await _drive(bare, body, concurrency, REQUESTS))
            service.append(await _drive(sts, body, concurrency, REQUESTS))
    return {c: (_median(f), _median(s)) for c, (f, s) in rounds.items()}


def _median(results: list[Result]) -> Result:
    return Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
    )


def main() -> int:
    """Run the benchmark (or, with --bare PORT, serve the bare endpoint)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--attack", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--attack-only", action="store_true", help="only the attack section")
    args = parser.parse_args()
    if args.bare:
        _serve_bare(args.bare)
        return 0
    if args.attack:
        _run(_attack_until_stopped(args.attack))
        return 0

    env = {**os.environ, "STS_LOG_LEVEL": "WARNING"}
    sts_port, bare_port = _free_port(), _free_port()
    sts_env = {k: v for k, v in env.items() if not k.startswith("STS_")}
    sts_env.update(STS_PORT=str(sts_port), STS_LOG_LEVEL="WARNING")
    procs = [
        _start([sys.executable, "-m", "sts_service"], sts_env),
        _start([sys.executable, __file__, "--bare", str(bare_port)], env),
    ]
    sts, bare = f"http://127.0.0.1:{sts_port}", f"http://127.0.0.1:{bare_port}"
    try:
        _wait_ready(sts, procs[0])
        _wait_ready(bare, procs[1])
        body = _body()
        results = {} if args.attack_only else _run(_run_all(sts_port, bare_port, body))
        quiet, attacked = _run(_run_attack(sts_port, body))
    finally:
        for proc in procs:
            _stop(proc)

    if results:
        _print_overhead(results, len(body))
    _print_attack(quiet, attacked)
    return 0


def _print_overhead(results: dict[int, tuple[Result, Result]], body_size: int) -> None:
    sys.stdout.write(
        f"POST {PROCESS_PATH}: 1 s of 16 kHz mono S16LE ({body_size} B JSON), "
        f"median of {ROUNDS} rounds of {REQUESTS} requests (+{WARMUP} warm-up), uvicorn "
        f"{'(uvloop+httptools)' if _has_standard() else '(asyncio+h11)'}, python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs\n\n"
    )
    header = (
        f"{'conc':>4} | {'bare req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'sts req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'p50 +ms':>7} {'p99 +ms':>7} {'rps %':>6}\n"
    )
    sys.stdout.write(header + "-" * (len(header) - 1) + "\n")
    for concurrency, (floor, service) in results.items():
        sys.stdout.write(
            f"{concurrency:>4} | {floor.rps:>10.0f} {floor.p50_ms:>7.2f} {floor.p99_ms:>7.2f} | "
            f"{service.rps:>10.0f} {service.p50_ms:>7.2f} {service.p99_ms:>7.2f} | "
            f"{service.p50_ms - floor.p50_ms:>7.2f} {service.p99_ms - floor.p99_ms:>7.2f} "
            f"{100 * service.rps / floor.rps:>5.0f}%\n"
        )
    floor4, service4 = results[4]
    overhead = service4.p99_ms - floor4.p99_ms
    best = max(service.rps for _, service in results.values())
    sys.stdout.write(
        f"\ngoal: p99 overhead at concurrency 4 < {GOAL_P99_OVERHEAD_MS:.0f} ms: "
        f"{overhead:.2f} ms -> {'met' if overhead < GOAL_P99_OVERHEAD_MS else 'NOT met'}\n"
        f"goal: >= {GOAL_RPS:.0f} req/s: best {best:.0f} req/s -> "
        f"{'met' if best >= GOAL_RPS else 'NOT met'}\n\n"
    )


def _print_attack(quiet: LoadResult, attacked: LoadResult) -> None:
    sys.stdout.write(
        f"slow-client attack (default limits): {SLOW_UPLOADS} slow uploads, "
        f"{IDLE_CONNECTIONS} idle connections, {TRICKLING_HEADS} trickling heads, "
        f"{HUGE_HEADERS} clients sending endless headers; beside them {HEALTH_PATH} polled "
        f"{ATTACK_HEALTH_REQUESTS} times and {ATTACK_PROCESS_CONCURRENCY} normal clients each "
        f"send a fragment every {ATTACK_PROCESS_EVERY_S * 1000:.0f} ms; median of {ROUNDS} "
        "rounds each\n"
    )
    for label, load in (("without attack", quiet), ("under attack", attacked)):
        sys.stdout.write(
            f"  {label:<15} health p50 {load.health_p50_ms:6.2f} ms  p99 "
            f"{load.health_p99_ms:6.2f} ms, failed {load.health_failures} | "
            "normal fragments answered 200: "
            f"{load.process_ok}/{load.process_total}, p99 {load.process_p99_ms:.2f} ms\n"
        )
    served = attacked.process_total > 0 and attacked.process_ok == attacked.process_total
    served = served and attacked.health_failures == 0
    p99 = attacked.health_p99_ms
    sys.stdout.write(
        f"goal: {HEALTH_PATH} p99 under attack < {GOAL_ATTACK_HEALTH_P99_MS:.0f} ms: "
        f"{p99:.2f} ms -> {'met' if p99 < GOAL_ATTACK_HEALTH_P99_MS else 'NOT met'}\n"
        f"goal: normal clients served under attack: -> {'met' if served else 'NOT met'}\n"
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run the client on uvloop when installed, like the servers."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(work)
    return uvloop.run(work)


def _has_standard() -> bool:
    return all(importlib.util.find_spec(name) for name in ("httptools", "uvloop"))


if __name__ == "__main__":
    raise SystemExit(main())
