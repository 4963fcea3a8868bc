"""Capacity: how many live streams one machine carries, one stream-worker process per stream.

One sts-service (echo) on a free loopback port, then N stream-workers at once, each dubbing a
speech-like sample paced at real time (6 s segments). For each N: the fallbacks (any means the
machine did not keep up; the sweep stops there), the p95 round trip, the CPU per stream in its
worker and in the service (fraction of one core), a worker's memory. The machine is shared:
compare figures within one run, and note the load average printed first.

Usage: .venv/bin/python scripts/bench/bench_capacity.py [--streams 1,8,16,32] [--seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import astuple, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from dev_sample import write_sample  # noqa: E402  (scripts beside this one, not installed modules)

STS_PYTHON = REPO / "apps" / "sts-service" / ".venv" / "bin" / "python"
WORKER_PYTHON = REPO / "apps" / "stream-worker" / ".venv" / "bin" / "python"
SEGMENT_MS = 6000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# One report line: the fields of Round, in order.
ROW = "capacity: {:7d} | {:9d} | {:6d} | {:17.1f} | {:17.4f} | {:18.4f} | {:13.0f} | {:6.1f}"


@dataclass(frozen=True)
class Round:
    """The outcome of N concurrent streams."""

    streams: int
    fallbacks: int
    failed_workers: int
    round_trip_p95_ms: float
    worker_cpu_per_stream: float
    service_cpu_per_stream: float
    worker_rss_mb: float
    wall_s: float


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_service(port: int) -> subprocess.Popen[bytes]:
    """sts-service with the echo backends, quiet logs, on 127.0.0.1:port; waits until healthy."""
    env = {**os.environ, "STS_PORT": str(port), "STS_HOST": "127.0.0.1", "STS_LOG_LEVEL": "WARNING"}
    env["STS_MAX_INFLIGHT"] = "1024"  # the bench measures the machine, not the 429 limit
    service = subprocess.Popen(
        [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2):
                return service
        except OSError:
            time.sleep(0.3)
    service.kill()
    raise SystemExit("capacity: sts-service did not become healthy within 60 s")


def run_round(streams: int, port: int, service_pid: int, sample: Path, work: Path) -> Round:
    """N workers at once against the running service; waits for all of them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    env["WORKER_LOG_LEVEL"] = "WARNING"
    service_cpu_before = cpu_seconds(service_pid)
    started = time.monotonic()
    workers = []
    for index in range(streams):
        summary = work / f"summary-{streams}-{index}.json"
        command = [str(WORKER_PYTHON), "-m", "stream_worker", "--realtime", "--progress", "never"]
        command += ["--input", str(sample), "--output", str(work / f"out-{index}.wav")]
        command += ["--sts-url", f"http://127.0.0.1:{port}"]
        command += ["--segmenter", "fixed", "--segment-ms", str(SEGMENT_MS)]
        command += ["--stream-id", f"capacity-{index}", "--summary-json", str(summary)]
        # The summary line and any error go to a log per worker, not over the report.
        with open(work / f"worker-{streams}-{index}.log", "wb") as log:
            worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        workers.append((worker, summary))
    peak_rss = 0.0
    while any(worker.poll() is None for worker, _ in workers):
        for worker, _ in workers:
            with contextlib.suppress(OSError):  # it may end between poll() and the read
                if worker.poll() is None:
                    peak_rss = max(peak_rss, rss_mb(worker.pid))
        time.sleep(1.0)
    wall = time.monotonic() - started
    service_cpu = cpu_seconds(service_pid) - service_cpu_before
    fallbacks = failed = 0
    worker_cpu = 0.0
    round_trips: list[float] = []
    audio_s = 0.0
    for worker, summary in workers:
        if worker.returncode != 0 or not summary.exists():
            failed += 1
            continue
        data = json.loads(summary.read_text())
        fallbacks += int(data["segments"]["fallback"])
        worker_cpu += float(data["cpu_s"])
        audio_s += float(data["audio_s"])
        p95 = data["latency_ms"]["round_trip"]["p95"]
        if p95 is not None:
            round_trips.append(float(p95))
    per_stream_audio = audio_s / max(1, streams - failed)
    return Round(
        streams=streams,
        fallbacks=fallbacks,
        failed_workers=failed,
        round_trip_p95_ms=max(round_trips, default=float("nan")),
        worker_cpu_per_stream=worker_cpu / max(audio_s, 1e-9),
        service_cpu_per_stream=service_cpu / max(1, streams) / max(per_stream_audio, 1e-9),
        worker_rss_mb=peak_rss,
        wall_s=wall,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and print one line per N, then the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,8,16,32", help="comma-separated sweep of N")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream")
    args = parser.parse_args(argv)
    sweep = [int(n) for n in args.streams.split(",")]
    for python in (STS_PYTHON, WORKER_PYTHON):
        if not python.exists():
            raise SystemExit(f"capacity: {python} is missing: run `make install` first")
    print(f"capacity: load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        "capacity: streams | fallbacks | failed | round trip p95 ms | worker CPU/stream "
        "| service CPU/stream | worker RSS MB | wall s"
    )
    port = free_port()
    service = start_service(port)
    best = 0
    try:
        with tempfile.TemporaryDirectory(prefix="capacity-") as scratch:
            work = Path(scratch)
            sample = write_sample(work / "sample.wav", args.seconds)
            for streams in sweep:
                result = run_round(streams, port, service.pid, sample, work)
                print(ROW.format(*astuple(result)), flush=True)
                if result.fallbacks or result.failed_workers:
                    print(f"capacity: {streams} streams did not keep up; the sweep stops here")
                    break
                best = streams
                last = result
    finally:
        service.terminate()
        service.wait(timeout=30)
    if best:
        per_stream = last.worker_cpu_per_stream + last.service_cpu_per_stream
        cores = os.cpu_count() or 1
        print(
            f"capacity: largest N with zero fallbacks: {best}; one stream costs "
            f"{last.worker_cpu_per_stream:.4f} core in its worker + "
            f"{last.service_cpu_per_stream:.4f} core in sts-service (echo); CPU alone would allow "
            f"~{cores / per_stream:.0f} streams on {cores} cores, memory "
            f"~{last.worker_rss_mb:.0f} MB per worker process"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
