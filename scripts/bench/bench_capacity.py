"""Capacity: how many live streams one machine carries, in two worker layouts side by side.

One sts-service (echo; `--engines`: the real ones, on English speech read by Pico), then N live
streams at once, each a 16 kHz sample paced at real time: ``per-process``, one stream-worker
process per stream, and ``one-process``, one ``stream-worker --streams FILE`` running all N.
Each layout's sweep stops at the first N with a fallback (the machine did not keep up). The
machine is shared: compare figures within one run, and note the load average printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
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
    DevError,
    clean_env,
    free_port,
    json_records,
    speak_command,
    sts_service,
    venv_python,
)

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


def reap(worker: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    """Wait for `worker` to exit: its status, and the kernel's account of its CPU and peak RSS."""
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    return worker.returncode, usage


def exited(worker: subprocess.Popen[bytes]) -> bool:
    """Whether `worker` has exited, leaving it for reap()."""
    return os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


@dataclass
class Layout:
    """What one round runs: N streams of `sample` against the service on `port`."""

    port: int
    service_pid: int
    python: str
    sample: Path
    work: Path
    segmenter: str
    stagger_s: float

    def start(
        self, command: list[str], log: Path, level: str = "WARNING"
    ) -> subprocess.Popen[bytes]:
        """A worker of live streams, its output (the summaries, any error) in `log`, in JSON.

        Fixed 6 s cuts, or the default pause cuts as they are; beside --streams, for each stream.
        """
        command = [self.python, "-m", "stream_worker", *command, "--progress", "never"]
        command += ["--sts-url", f"http://127.0.0.1:{self.port}", "--realtime"]
        command += ["--segmenter", self.segmenter]
        command += ["--segment-ms", str(SEGMENT_MS)] if self.segmenter == "fixed" else []
        with open(log, "wb") as out:
            return subprocess.Popen(
                command,
                env={**clean_env(), "WORKER_LOG_LEVEL": level, "WORKER_LOG_FORMAT": "json"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def streams_file(self, path: Path, streams: int) -> Path:
        """The --streams file of one round: N live streams of the sample (rewritten in place)."""
        lines = [
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


def wait_running(worker: subprocess.Popen[bytes], log: Path, streams: int) -> bool:
    """Wait until `streams` streams of `worker` run (True), or until it exits (False)."""
    while running_streams(log) < streams:
        if exited(worker):
            return False
        time.sleep(0.1)
    return True


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
        command = ["--input", str(layout.sample), "--stream-id", f"capacity-{index}"]
        command += ["--output", str(layout.work / f"out-{index}.wav")]
        workers.append((layout.start(command, log), log))
        time.sleep(layout.stagger_s / streams)
    ends = [(*reap(worker), log) for worker, log in workers]
    wall = time.monotonic() - started
    good = [(u, s) for status, u, log in ends if status == 0 for s in summaries(log)[-1:]]
    run_cpu = sum(float(s["cpu_s"]) for _, s in good)
    # The summary's cpu_s is the run's; the rest of the process's is start-up.
    startup = sum(max(0.0, u.ru_utime + u.ru_stime - float(s["cpu_s"])) for u, s in good)
    return tally(
        streams, [s for _, s in good], run_cpu,
        cpu_seconds(layout.service_pid) - service_cpu_before,
        worker_rss_mb=max(u.ru_maxrss for _, u, _ in ends) / 1024, startup_cpu_s=startup,
        startup_wall_s=float("nan"), wall_s=wall,
    )  # fmt: skip


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
    startup_cpu = startup_wall = float("nan")
    # Once the first streams run, SIGHUP is handled (a zombie not reaped yet ignores it).
    if steps > 1 and wait_running(worker, log, first):
        for step in range(2, steps + 1):
            time.sleep(layout.stagger_s / steps)
            layout.streams_file(config, streams * step // steps)
            os.kill(worker.pid, signal.SIGHUP)
    if wait_running(worker, log, streams):  # what it spent until all N run is start-up
        startup_wall, startup_cpu = time.monotonic() - started, cpu_seconds(worker.pid)
    _, usage = reap(worker)
    wall = time.monotonic() - started
    good = [s for s in summaries(log) if s.get("exit_code") == 0]
    run_cpu = usage.ru_utime + usage.ru_stime - (0.0 if math.isnan(startup_cpu) else startup_cpu)
    return tally(
        streams, good, max(0.0, run_cpu), cpu_seconds(layout.service_pid) - service_cpu_before,
        worker_rss_mb=usage.ru_maxrss / 1024, startup_cpu_s=startup_cpu,
        startup_wall_s=startup_wall, wall_s=wall,
    )  # fmt: skip


def numbers(text: str) -> list[int]:
    """A comma-separated list of stream counts (ValueError, which argparse reports, if not)."""
    return [int(number) for number in text.split(",")]


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


async def measure(args: argparse.Namespace) -> dict[str, list[Round]]:
    """Every layout's sweep against one sts-service (echo, or the real engines)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STS_PORT": str(port), "STS_HOST": "127.0.0.1", "STS_LOG_LEVEL": "WARNING"}
    env.update(REAL_ENGINES if args.engines else {})
    # The bench measures the machine, not the 429 limits (in flight, and bodies arriving at
    # once: N streams started together send N bodies in the same instant).
    env.update(STS_MAX_INFLIGHT="1024", STS_MAX_RECEIVING="1024")
    with tempfile.TemporaryDirectory(prefix="capacity-") as scratch:
        work = Path(scratch)
        sample = work / "sample.wav"
        if args.engines:  # English news read by Pico, sentences 0.6 s apart
            subprocess.run(speak_command(sample, NEWS, args.seconds), check=True)
        else:
            write_sample(sample, args.seconds)
        # 180 s: the real engines load their models first.
        async with sts_service(url, env, 180, work / "sts-service.log", healthy=True) as service:
            assert service.process is not None
            stagger_s = SEGMENT_MS / 1000 if args.stagger else 0.0
            layout = Layout(
                port, service.process.pid, venv_python("apps/stream-worker"), sample, work,
                args.segmenter, stagger_s,
            )  # fmt: skip
            counts = {"per-process": args.streams, "one-process": args.one_process_streams}
            return {
                name: await asyncio.to_thread(sweep, name, counts[name], layout)
                for name in args.layouts
            }


def main(argv: list[str] | None = None) -> int:
    """Run the sweeps, one line per round, then the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams",
        type=numbers,
        default="1,8,16,32",
        help="per-process: comma-separated sweep of N",
    )
    parser.add_argument(
        "--one-process-streams",
        type=numbers,
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
    parser.add_argument(
        "--layouts", type=lambda text: text.split(","), default=LAYOUTS, help="which layouts to run"
    )
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="start the streams spread over one segment length (as live channels, which do "
        "not all start in the same instant) instead of all at once (the worst case: every "
        "stream's segments end together)",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.layouts) - set(LAYOUTS):
        parser.error(f"--layouts: {', '.join(sorted(unknown))} is not one of {', '.join(LAYOUTS)}")
    print(f"capacity: load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        "capacity: layout      | streams | fallbacks | failed | round trip p95 ms "
        "| worker CPU/stream | service CPU/stream | worker RSS MB | start-up CPU s "
        "| start-up s | wall s"
    )
    try:
        results = asyncio.run(measure(args))
    except DevError as exc:
        raise SystemExit(f"capacity: {exc}") from None
    for name, rounds in results.items():
        verdict(name, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
