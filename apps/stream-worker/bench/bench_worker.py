"""Benchmark: stream-worker through a real sts-service (echo) on loopback.

1. 10 minutes of 16 kHz mono, not paced, default settings (6 s segments, 3 in flight):
   wall time, real-time factor, per-segment overhead, and the worker process's CPU time as a
   share of the audio's duration -- beside the time to read and write the same audio with no
   service at all, measured in the same run.
2. --realtime on a 30 s clip with 1 s segments: p95 added latency per segment (last sample
   of the segment in -> segment written, minus the service's own processing time).

Run: `cd apps/stream-worker && make bench` (sts-service's venv must exist: `make install`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shared_audio import AudioFormat
from shared_utils.contract import HEALTH_PATH
from stream_worker.demux import MediaSource
from stream_worker.sink import WavSink

# The test audio generator lives with the tests, never in the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from worker_support import write_tone  # must follow the sys.path line

REPO_ROOT = Path(__file__).resolve().parents[3]
STS_PYTHON = REPO_ROOT / "apps" / "sts-service" / ".venv" / "bin" / "python"
LONG_S = 600.0
REALTIME_S = 30.0
GOAL_WALL_S = 10.0
GOAL_CPU_SHARE = 0.05
GOAL_ADDED_P95_MS = 50.0


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sts(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start sts-service (echo backend) from its own venv and wait until it is healthy."""
    if not STS_PYTHON.exists():
        sys.exit(f"bench: {STS_PYTHON} missing: run `make install` at {REPO_ROOT}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STS_", "WORKER_"))}
    env.update({"STS_PORT": str(port), "STS_LOG_LEVEL": "WARNING"})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + HEALTH_PATH, timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("bench: sts-service did not start")


@contextlib.contextmanager
def sts_in_tempdir(prefix: str) -> Iterator[tuple[Path, str]]:
    """A temporary directory and the URL of an sts-service started there, both for the block."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        proc, url = start_sts(tmp / "sts.log")
        try:
            yield tmp, url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def baseline(src: Path, dst: Path) -> tuple[float, float]:
    """Read and write the same audio with no service: (wall s, cpu s), in this process."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    reader = MediaSource(str(src), AudioFormat(16000, 1))
    sink = WavSink(str(dst), reader.format)
    for chunk in reader:
        sink.write(chunk)
    sink.close()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def run_worker(src: Path, dst: Path, url: str, *extra: str) -> tuple[dict[str, Any], float, float]:
    """Run the worker as its own process: (summary, wall s, worker CPU s from getrusage)."""
    summary_path = dst.with_suffix(".json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "stream_worker", "-i", str(src), "-o", str(dst), "--sts-url", url,
         "--require-sts", "--progress", "never", "--log-level", "WARNING",
         "--summary-json", str(summary_path), *extra],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bench: worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary, wall, cpu


def verdict(ok: bool) -> str:
    """PASS/FAIL label."""
    return "PASS" if ok else "FAIL"


def main() -> None:
    """Run both measurements and print a report."""
    with sts_in_tempdir("sw-bench-") as (tmp, url):
        long_wav, short_wav = tmp / "long.wav", tmp / "short.wav"
        write_tone(long_wav, LONG_S)
        write_tone(short_wav, REALTIME_S)
        base_wall, base_cpu = baseline(long_wav, tmp / "copy.wav")
        summary, wall, cpu = run_worker(long_wav, tmp / "out.wav", url)
        rt, _, _ = run_worker(
            short_wav,
            tmp / "rt.wav",
            url,
            "--realtime",
            "--segmenter",
            "fixed",
            "--segment-ms",
            "1000",
        )

    segments = summary["segments"]["total"]
    lat = summary["latency_ms"]
    in_proc_wall = summary["wall_s"]
    overhead_ms = (lat["round_trip"]["p50"] or 0) - (lat["service"]["p50"] or 0)
    cpu_share = cpu / LONG_S
    added_p95 = rt["latency_ms"]["added"]["p95"]
    rt_added = rt["latency_ms"]["added"]
    wall_ok = verdict(wall < GOAL_WALL_S)
    cpu_ok = verdict(cpu_share < GOAL_CPU_SHARE)
    rt_ok = verdict(added_p95 is not None and added_p95 < GOAL_ADDED_P95_MS)
    lines = [
        f"10 min of 16 kHz mono ({segments} segments of {summary['segment_ms']} ms), "
        "echo, not paced",
        f"  reference: read+write, no service  wall {base_wall:6.3f} s  cpu {base_cpu:6.3f} s",
        f"  worker process (with start-up)     wall {wall:6.3f} s  cpu {cpu:6.3f} s",
        f"  worker pipeline (summary)          wall {in_proc_wall:6.3f} s  "
        f"cpu {summary['cpu_s']:6.3f} s",
        f"  worker wall / reference wall       {wall / base_wall:8.1f}x",
        f"  real-time factor (wall/audio)      {summary['real_time_factor']:.4f} "
        f"({LONG_S / in_proc_wall:.0f}x real time)",
        f"  per segment: wall {1000 * in_proc_wall / segments:.1f} ms; round trip "
        f"p50 {lat['round_trip']['p50']} ms p95 {lat['round_trip']['p95']} ms; "
        f"service p50 {lat['service']['p50']} ms; overhead p50 {overhead_ms:.1f} ms",
        f"  fallbacks {summary['segments']['fallback']}; output frames "
        f"{summary['output_frames']} == input frames {summary['input_frames']}",
        f"  goal wall < {GOAL_WALL_S:.0f} s: {wall:.2f} s {wall_ok}",
        f"  goal worker CPU < {GOAL_CPU_SHARE:.0%} of audio: {cpu_share:.2%} {cpu_ok}",
        f"--realtime, {REALTIME_S:.0f} s clip, 1 s segments ({rt['segments']['total']} segments)",
        f"  added latency (arrival -> output, minus service time) p50 {rt_added['p50']} ms "
        f"p95 {added_p95} ms max {rt_added['max']} ms",
        f"  goal p95 added < {GOAL_ADDED_P95_MS:.0f} ms: {rt_ok}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
