"""Capacity: how many live streams one machine carries, in two worker layouts side by side.

One sts-service (echo; `--engines`: the real ones, on English speech read by Pico), then N live
streams at once, each a 16 kHz sample paced at real time: ``per-process``, one stream-worker
process per stream, and ``one-process``, one ``stream-worker --streams FILE`` running all N.
Each layout's sweep stops at the first N with a fallback (the machine did not keep up). The
machine is shared: compare figures within one run, and note the load average printed first.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from dev_sample import write_sample  # noqa: E402  (scripts beside this one, not installed modules)
from devproc import (  # noqa: E402  (likewise)
    NEWS,
    REAL_ENGINES,
    clean_env,
    free_port,
    health,
    json_records,
    speak_command,
)

STS_PYTHON = REPO / "apps" / "sts-service" / ".venv" / "bin" / "python"
WORKER_PYTHON = REPO / "apps" / "stream-worker" / ".venv" / "bin" / "python"
SEGMENT_MS = 6000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# One report line: the layout, then the fields of Round, in order.
ROW = (
    "capacity: {:11s} | {:7d} | {:9d} | {:6d} | {:17.1f} | {:17.4f} | {:18.4f} | {:13.0f} "
    "| {:14.1f} | {:10.1f} | {:6.1f}"
)
LAYOUTS = ("per-process", "one-process")
#: `--stagger`: streams are started (added) in this many steps over one segment length.
STAGGER_STEPS = 10


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
    startup_cpu_s: float
    startup_wall_s: float
    wall_s: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a process that has ended but not been reaped yet


def write_speech(path: Path, seconds: float) -> Path:
    """`seconds` of English news read by Pico (en-US), 16 kHz mono, sentences 0.6 s apart."""
    subprocess.run(speak_command(path, NEWS, seconds), check=True)
    return path


def start_service(port: int, engines: bool = False) -> subprocess.Popen[bytes]:
    """sts-service (echo, or the real engines) on 127.0.0.1:port; waits until it is healthy."""
    env = {**os.environ, "STS_PORT": str(port), "STS_HOST": "127.0.0.1", "STS_LOG_LEVEL": "WARNING"}
    env.update(REAL_ENGINES if engines else {})
    # The bench measures the machine, not the 429 limits (in flight, and bodies arriving at
    # once: N streams started together send N bodies in the same instant).
    env.update(STS_MAX_INFLIGHT="1024", STS_MAX_RECEIVING="1024")
    service = subprocess.Popen(
        [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180  # the real engines load their models first
    while time.monotonic() < deadline:
        if (health(f"http://127.0.0.1:{port}", 2.0) or {}).get("status") == "healthy":
            return service
        time.sleep(0.3)
    service.kill()
    raise SystemExit("capacity: sts-service did not become healthy within 180 s")


@dataclass
class Layout:
    """What one round runs: N streams of `sample` against the service on `port`."""

    port: int
    service_pid: int
    sample: Path
    work: Path
    segmenter: str
    stagger_s: float

    def start(
        self, command: list[str], log: Path, level: str = "WARNING"
    ) -> subprocess.Popen[bytes]:
        """A worker process, its output (the summary line, any error) in `log`, in JSON."""
        command = [str(WORKER_PYTHON), "-m", "stream_worker", *command, "--progress", "never"]
        command += ["--sts-url", f"http://127.0.0.1:{self.port}"]
        with open(log, "wb") as out:
            return subprocess.Popen(
                command,
                env={**clean_env(), "WORKER_LOG_LEVEL": level, "WORKER_LOG_FORMAT": "json"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def streams_file(self, path: Path, streams: int) -> Path:
        """The --streams file of one round: N live streams of the sample (rewritten in place)."""
        fixed = f"segment_ms = {SEGMENT_MS}\n" if self.segmenter == "fixed" else ""
        lines = [f'[defaults]\nrealtime = true\nsegmenter = "{self.segmenter}"\n{fixed}']
        lines += [
            f'[[stream]]\nid = "capacity-{index}"\ninput = "{self.sample}"\n'
            f'output = "{self.work / f"one-{index}.wav"}"\nsource_lang = "en"\ntarget_lang = "es"\n'
            for index in range(streams)
        ]
        scratch = path.with_suffix(".new")
        scratch.write_text("\n".join(lines), encoding="utf-8")
        scratch.replace(path)  # atomic: a SIGHUP never reads half a file
        return path


def summaries(log: Path) -> list[dict[str, Any]]:
    """The summary lines a worker logged (JSON), one per stream it ran."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return [record for record in json_records(text) if record.get("event") == "summary"]


def running_streams(log: Path) -> int:
    """How many streams logged the state `running` so far (JSON log lines of one process)."""
    with contextlib.suppress(OSError):
        return log.read_text(encoding="utf-8", errors="replace").count('"state": "running"')
    return 0


def tally(
    streams: int, good: list[dict[str, Any]], worker_cpu: float, service_cpu: float, **rest: float
) -> Round:
    """A Round from the summaries of the streams that ended well, and what was measured.

    Prints why segments fell back, when any did: a `timeout` or `late` is a deadline that
    passed; anything else (`busy`, `sts_error`, `circuit_open`) is a limit or a fault.
    """
    reasons = sum(
        (Counter({r: int(n) for r, n in s["fallbacks"].items()}) for s in good), Counter()
    )
    if reasons:  # a sum of Counters keeps the reasons that happened only
        print(f"capacity: {streams} streams: fallbacks {dict(reasons)}", flush=True)
    audio_s = sum(float(s["audio_s"]) for s in good)
    per_stream_audio_s = max(audio_s / max(1, len(good)), 1e-9)
    p95s = [s["latency_ms"]["round_trip"]["p95"] for s in good]
    return Round(
        streams=streams,
        fallbacks=sum(int(s["segments"]["fallback"]) for s in good),
        failed_workers=streams - len(good),
        round_trip_p95_ms=max((float(p) for p in p95s if p is not None), default=float("nan")),
        worker_cpu_per_stream=worker_cpu / max(audio_s, 1e-9),
        service_cpu_per_stream=service_cpu / max(1, streams) / per_stream_audio_s,
        **rest,
    )


def run_per_process(streams: int, layout: Layout) -> Round:
    """N workers against the running service, started at once or spread over its stagger."""
    service_cpu_before = cpu_seconds(layout.service_pid)
    started = time.monotonic()
    workers = []
    for index in range(streams):
        log = layout.work / f"worker-{streams}-{index}.log"
        command = ["--realtime", "--input", str(layout.sample), "--stream-id", f"capacity-{index}"]
        command += ["--output", str(layout.work / f"out-{index}.wav")]
        workers.append((layout.start([*command, *segmenter_options(layout.segmenter)], log), log))
        time.sleep(layout.stagger_s / streams)
    peak_rss = 0.0
    cpu_total: dict[int, float] = {}
    while any(worker.poll() is None for worker, _ in workers):
        for worker, _ in workers:
            with contextlib.suppress(OSError):  # it may end between poll() and the read
                if worker.poll() is None:
                    peak_rss = max(peak_rss, rss_mb(worker.pid))
                    cpu_total[worker.pid] = cpu_seconds(worker.pid)
        time.sleep(1.0)
    wall = time.monotonic() - started
    good = [(w, s) for w, log in workers if w.returncode == 0 for s in summaries(log)[-1:]]
    run_cpu = sum(float(s["cpu_s"]) for _, s in good)
    # The summary's cpu_s is the run's; the rest of the process's (last sample) is start-up.
    startup = sum(max(0.0, cpu_total.get(w.pid, 0.0) - float(s["cpu_s"])) for w, s in good)
    return tally(
        streams, [s for _, s in good], run_cpu,
        cpu_seconds(layout.service_pid) - service_cpu_before,
        worker_rss_mb=peak_rss, startup_cpu_s=startup, startup_wall_s=float("nan"), wall_s=wall,
    )  # fmt: skip


def segmenter_options(segmenter: str) -> list[str]:
    """The worker's segmenter flags: fixed 6 s cuts, or the default pause cuts as they are."""
    fixed = ["--segment-ms", str(SEGMENT_MS)] if segmenter == "fixed" else []
    return ["--segmenter", segmenter, *fixed]


def run_one_process(streams: int, layout: Layout) -> Round:
    """One `stream-worker --streams` process running N streams; waits for it.

    With a stagger, the streams are added over that time in steps (file rewritten, then
    SIGHUP), as channels join a running worker, so their segments do not all end at once.
    """
    steps = min(streams, STAGGER_STEPS) if layout.stagger_s else 1
    first = streams if steps == 1 else max(1, streams // steps)
    config = layout.streams_file(layout.work / f"streams-{streams}.toml", first)
    log = layout.work / f"one-process-{streams}.log"
    service_cpu_before = cpu_seconds(layout.service_pid)
    started = time.monotonic()
    worker = layout.start(["--streams", str(config)], log, "INFO")  # INFO: the state lines
    peak_rss = cpu_now = 0.0
    startup_cpu = startup_wall = float("nan")
    if steps > 1:  # the first streams run (SIGHUP is handled from then on); add the others
        while worker.poll() is None and running_streams(log) < first:
            time.sleep(0.1)
        for step in range(2, steps + 1):
            time.sleep(layout.stagger_s / steps)
            layout.streams_file(config, streams * step // steps)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGHUP)
    while worker.poll() is None:
        with contextlib.suppress(OSError):
            peak_rss = max(peak_rss, rss_mb(worker.pid))
            cpu_now = cpu_seconds(worker.pid)
        if math.isnan(startup_wall) and running_streams(log) >= streams:
            startup_wall, startup_cpu = time.monotonic() - started, cpu_now
        time.sleep(0.5 if math.isnan(startup_wall) else 1.0)
    wall = time.monotonic() - started
    good = [s for s in summaries(log) if s.get("exit_code") == 0]
    return tally(
        streams, good, max(0.0, cpu_now - (0.0 if math.isnan(startup_cpu) else startup_cpu)),
        cpu_seconds(layout.service_pid) - service_cpu_before,
        worker_rss_mb=peak_rss, startup_cpu_s=startup_cpu, startup_wall_s=startup_wall,
        wall_s=wall,
    )  # fmt: skip


def sweep(name: str, counts: list[int], layout: Layout) -> list[Round]:
    """One layout's rounds, until one does not keep up."""
    rounds: list[Round] = []
    run = run_per_process if name == "per-process" else run_one_process
    for streams in counts:
        result = run(streams, layout)
        print(ROW.format(name, *astuple(result)), flush=True)
        rounds.append(result)
        if result.fallbacks or result.failed_workers:
            print(f"capacity: {name}: {streams} streams did not keep up; its sweep stops here")
            break
    return rounds


def verdict(layout: str, rounds: list[Round]) -> None:
    """The largest N without fallbacks, and what one more stream costs."""
    kept = [r for r in rounds if not r.fallbacks and not r.failed_workers]
    if not kept:
        print(f"capacity: {layout}: no round without fallbacks")
        return
    best, first = kept[-1], kept[0]
    cores = os.cpu_count() or 1
    per_stream = best.worker_cpu_per_stream + best.service_cpu_per_stream
    if layout == "per-process":
        memory = f"~{best.worker_rss_mb:.0f} MB per worker process (one per stream)"
        startup = f"start-up {best.startup_cpu_s / best.streams:.2f} CPU s per stream"
    else:
        extra = (best.worker_rss_mb - first.worker_rss_mb) / max(1, best.streams - first.streams)
        memory = (
            f"{best.worker_rss_mb:.0f} MB for the process, {extra:.2f} MB per extra stream "
            f"(against {first.streams} stream(s): {first.worker_rss_mb:.0f} MB)"
        )
        startup = (
            f"start-up {best.startup_cpu_s:.1f} CPU s / {best.startup_wall_s:.1f} s wall for all "
            f"{best.streams} (one stream: {first.startup_cpu_s:.1f} CPU s)"
        )
    print(
        f"capacity: {layout}: largest N with zero fallbacks: {best.streams}; one stream costs "
        f"{best.worker_cpu_per_stream:.4f} core in the worker + {best.service_cpu_per_stream:.4f} "
        f"core in sts-service; CPU alone would allow ~{cores / per_stream:.0f} streams on "
        f"{cores} cores; memory {memory}; {startup}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweeps, one line per round, then the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", default="1,8,16,32", help="per-process: comma-separated sweep of N"
    )
    parser.add_argument(
        "--one-process-streams",
        default="1,50,100,150",
        help="one-process: comma-separated sweep of N (its first N is the per-stream baseline)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream")
    parser.add_argument("--segmenter", choices=("fixed", "vad"), default="vad")
    parser.add_argument(
        "--engines",
        action="store_true",
        help="the real engines (whisper, Apertium, Pico; make install ENGINES=1 and make "
        "install-engines-system) on English speech read by Pico, instead of echo",
    )
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="which layouts to run")
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="start the streams spread over one segment length (as live channels, which do "
        "not all start in the same instant) instead of all at once (the worst case: every "
        "stream's segments end together)",
    )
    args = parser.parse_args(argv)
    counts = {
        "per-process": [int(n) for n in args.streams.split(",")],
        "one-process": [int(n) for n in args.one_process_streams.split(",")],
    }
    layouts = [layout for layout in args.layouts.split(",") if layout]
    for layout in layouts:
        if layout not in LAYOUTS:
            raise SystemExit(f"capacity: --layouts: {layout!r} is not one of {', '.join(LAYOUTS)}")
    for python in (STS_PYTHON, WORKER_PYTHON):
        if not python.exists():
            raise SystemExit(f"capacity: {python} is missing: run `make install` first")
    print(f"capacity: load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        "capacity: layout      | streams | fallbacks | failed | round trip p95 ms "
        "| worker CPU/stream | service CPU/stream | worker RSS MB | start-up CPU s "
        "| start-up s | wall s"
    )
    port = free_port()
    service = start_service(port, args.engines)
    results: dict[str, list[Round]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="capacity-") as scratch:
            work = Path(scratch)
            make_input = write_speech if args.engines else write_sample
            sample = make_input(work / "sample.wav", args.seconds)
            stagger_s = SEGMENT_MS / 1000 if args.stagger else 0.0
            layout = Layout(port, service.pid, sample, work, args.segmenter, stagger_s)
            for name in layouts:
                results[name] = sweep(name, counts[name], layout)
    finally:
        service.terminate()
        service.wait(timeout=30)
    for name, rounds in results.items():
        verdict(name, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
