"""Capacity: how many live streams one machine carries, in two worker layouts side by side.

One sts-service on a free loopback port (echo; `--engines`: whisper, Apertium and Pico, on
English speech read by Pico), then N live streams at once, each dubbing a 16 kHz sample paced
at real time (`--segmenter`: `vad`, pause cuts, the worker's default; or fixed 6 s segments):

- ``per-process``: N stream-worker processes, one stream each;
- ``one-process``: one ``stream-worker --streams FILE`` process running all N.

For each N: the fallbacks (any means the machine did not keep up; that layout's sweep stops
there), the p95 round trip, the CPU per stream in the worker(s) and in the service (fraction of
one core), the worker memory (per process for per-process; the one process's peak for
one-process, and per extra stream against the sweep's first round), and the start-up cost (CPU
seconds and wall seconds until every stream runs). The machine is shared: compare figures
within one run, and note the load average printed first.

Usage: .venv/bin/python scripts/bench/bench_capacity.py [--streams 1,8,16,32] [--engines]
       [--one-process-streams 1,50,100,150] [--seconds 30] [--layouts per-process,one-process]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
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


#: `--engines`: the real engines, with every other service setting at its default.
REAL_ENGINES = {
    "STS_ASR_BACKEND": "whisper",
    "STS_TRANSLATION_BACKEND": "apertium",
    "STS_TTS_BACKEND": "pico",
    "HF_HUB_OFFLINE": "1",
}
#: `--engines`: English news sentences Pico speaks into the streams' input (real speech for
#: whisper; the generated dev sample is only speech-like, which it rightly hears as nothing).
NEWS = [
    "Good evening, here are the main stories of the day.",
    "The city council approved a new budget for public schools on Tuesday.",
    "Heavy rain is expected across the north of the country this weekend.",
    "The central bank kept interest rates unchanged for the third month in a row.",
    "Firefighters brought the warehouse fire under control this morning.",
    "The national team won the final after a dramatic penalty shootout.",
    "Scientists say the new vaccine is safe and effective for older people.",
    "Trains between the two cities will run again next week.",
]
SPEECH_SCRIPT = """
import sys
import numpy as np
from shared_audio import AudioFormat, float32_to_int16, resample, write_wav
from sts_service.backends.pico import pico_speak
seconds, path, sentences = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
parts, total, index = [], 0, 0
while total < seconds * 16000:
    samples, rate = pico_speak(sentences[index % len(sentences)], "en-US")
    spoken = resample(float32_to_int16(samples), rate, 16000)
    pause = np.zeros(int(0.6 * 16000), np.int16)
    parts += [spoken.reshape(-1), pause]
    total += spoken.shape[0] + pause.shape[0]
    index += 1
audio = np.concatenate(parts)[: int(seconds * 16000)]
write_wav(path, audio[:, None], AudioFormat(16000, 1))
"""


def write_speech(path: Path, seconds: float) -> Path:
    """`seconds` of English news read by Pico (en-US), 16 kHz mono, sentences 0.6 s apart."""
    subprocess.run(
        [str(STS_PYTHON), "-c", SPEECH_SCRIPT, str(seconds), str(path), *NEWS], check=True
    )
    return path


def start_service(port: int, engines: bool = False) -> subprocess.Popen[bytes]:
    """sts-service (echo, or the real engines) on 127.0.0.1:port; waits until it is healthy."""
    env = {**os.environ, "STS_PORT": str(port), "STS_HOST": "127.0.0.1", "STS_LOG_LEVEL": "WARNING"}
    if engines:
        env.update(REAL_ENGINES)
    # The bench measures the machine, not the 429 limits (in flight, and bodies arriving at
    # once: N streams started together send N bodies in the same instant).
    env["STS_MAX_INFLIGHT"] = "1024"
    env["STS_MAX_RECEIVING"] = "1024"
    service = subprocess.Popen(
        [str(STS_PYTHON), "-m", "sts_service"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180  # the real engines load their models first
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/v1/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                if json.loads(answer.read())["status"] == "healthy":
                    return service
        except OSError:
            pass
        time.sleep(0.3)
    service.kill()
    raise SystemExit("capacity: sts-service did not become healthy within 180 s")


def segmenter_options(segmenter: str) -> list[str]:
    """The worker's segmenter flags: fixed 6 s cuts, or the default pause cuts as they are."""
    if segmenter == "fixed":
        return ["--segmenter", "fixed", "--segment-ms", str(SEGMENT_MS)]
    return ["--segmenter", segmenter]


def worker_env() -> dict[str, str]:
    """The environment of a worker: this one without WORKER_ variables, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    env["WORKER_LOG_LEVEL"] = "WARNING"
    return env


def run_round(
    streams: int,
    port: int,
    service_pid: int,
    sample: Path,
    work: Path,
    segmenter: str,
    stagger_s: float = 0.0,
) -> Round:
    """N workers against the running service, started at once or spread over `stagger_s`."""
    env = worker_env()
    service_cpu_before = cpu_seconds(service_pid)
    started = time.monotonic()
    workers = []
    for index in range(streams):
        summary = work / f"summary-{streams}-{index}.json"
        command = [str(WORKER_PYTHON), "-m", "stream_worker", "--realtime", "--progress", "never"]
        command += ["--input", str(sample), "--output", str(work / f"out-{index}.wav")]
        command += ["--sts-url", f"http://127.0.0.1:{port}", *segmenter_options(segmenter)]
        command += ["--stream-id", f"capacity-{index}", "--summary-json", str(summary)]
        # The summary line and any error go to a log per worker, not over the report.
        with open(work / f"worker-{streams}-{index}.log", "wb") as log:
            worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        workers.append((worker, summary))
        if stagger_s:
            time.sleep(stagger_s / streams)
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
    service_cpu = cpu_seconds(service_pid) - service_cpu_before
    fallbacks = failed = 0
    worker_cpu = startup_cpu = 0.0
    round_trips: list[float] = []
    audio_s = 0.0
    for worker, summary in workers:
        if worker.returncode != 0 or not summary.exists():
            failed += 1
            continue
        data = json.loads(summary.read_text())
        fallbacks += int(data["segments"]["fallback"])
        worker_cpu += float(data["cpu_s"])
        # The summary's cpu_s is the run's; the rest of the process's (last sample) is start-up.
        startup_cpu += max(0.0, cpu_total.get(worker.pid, 0.0) - float(data["cpu_s"]))
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
        startup_cpu_s=startup_cpu,
        startup_wall_s=float("nan"),
        wall_s=wall,
    )


def streams_file(path: Path, streams: int, sample: Path, work: Path, segmenter: str) -> Path:
    """The --streams file of one round: N live streams of `sample` (rewritten in place)."""
    fixed = f"segment_ms = {SEGMENT_MS}\n" if segmenter == "fixed" else ""
    lines = [f'[defaults]\nrealtime = true\nsegmenter = "{segmenter}"\n{fixed}']
    for index in range(streams):
        lines.append(
            f'[[stream]]\nid = "capacity-{index}"\ninput = "{sample}"\n'
            f'output = "{work / f"one-{index}.wav"}"\nsource_lang = "en"\ntarget_lang = "es"\n'
        )
    scratch = path.with_suffix(".new")
    scratch.write_text("\n".join(lines), encoding="utf-8")
    scratch.replace(path)  # atomic: a SIGHUP never reads half a file
    return path


def run_one_process(
    streams: int,
    port: int,
    service_pid: int,
    sample: Path,
    work: Path,
    segmenter: str,
    stagger_s: float = 0.0,
) -> Round:
    """One `stream-worker --streams` process running N streams; waits for it.

    With `stagger_s`, the streams are added over that time in steps (file rewritten, then
    SIGHUP), as channels join a running worker, so their segments do not all end at once.
    """
    env = worker_env()
    env["WORKER_LOG_LEVEL"] = "INFO"  # the state lines tell when every stream runs
    env["WORKER_LOG_FORMAT"] = "json"
    steps = min(streams, STAGGER_STEPS) if stagger_s else 1
    first = streams if steps == 1 else max(1, streams // steps)
    config = streams_file(work / f"streams-{streams}.toml", first, sample, work, segmenter)
    command = [str(WORKER_PYTHON), "-m", "stream_worker", "--streams", str(config)]
    command += ["--sts-url", f"http://127.0.0.1:{port}", "--progress", "never"]
    log_path = work / f"one-process-{streams}.log"
    service_cpu_before = cpu_seconds(service_pid)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    peak_rss = cpu_now = 0.0
    startup_cpu = startup_wall = float("nan")
    if steps > 1:  # the first streams run (SIGHUP is handled from then on); add the others
        while worker.poll() is None and _count_state(log_path, "running") < first:
            time.sleep(0.1)
        for step in range(2, steps + 1):
            time.sleep(stagger_s / steps)
            streams_file(config, streams * step // steps, sample, work, segmenter)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGHUP)
    while worker.poll() is None:
        with contextlib.suppress(OSError):
            peak_rss = max(peak_rss, rss_mb(worker.pid))
            cpu_now = cpu_seconds(worker.pid)
        if startup_wall != startup_wall and _count_state(log_path, "running") >= streams:
            startup_wall, startup_cpu = time.monotonic() - started, cpu_now
        time.sleep(0.5 if startup_wall != startup_wall else 1.0)
    wall = time.monotonic() - started
    service_cpu = cpu_seconds(service_pid) - service_cpu_before
    summaries = [
        json.loads(line)
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.startswith('{"event":"summary"')
    ]
    good = [s for s in summaries if s.get("exit_code") == 0]
    audio_s = sum(float(s["audio_s"]) for s in good)
    fallbacks = sum(int(s["segments"]["fallback"]) for s in good)
    reasons: dict[str, int] = {}
    for summary in good:
        for reason, count in summary["fallbacks"].items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    if fallbacks:
        print(f"capacity: one-process {streams}: fallbacks {reasons}", flush=True)
    p95s = [s["latency_ms"]["round_trip"]["p95"] for s in good]
    per_stream_audio = audio_s / max(1, len(good))
    run_cpu = max(0.0, cpu_now - (startup_cpu if startup_cpu == startup_cpu else 0.0))
    return Round(
        streams=streams,
        fallbacks=fallbacks,
        failed_workers=streams - len(good),
        round_trip_p95_ms=max((float(p) for p in p95s if p is not None), default=float("nan")),
        worker_cpu_per_stream=run_cpu / max(audio_s, 1e-9),
        service_cpu_per_stream=service_cpu / max(1, streams) / max(per_stream_audio, 1e-9),
        worker_rss_mb=peak_rss,
        startup_cpu_s=startup_cpu,
        startup_wall_s=startup_wall,
        wall_s=wall,
    )


def _count_state(log_path: Path, state: str) -> int:
    """How many streams logged `state` so far (JSON log lines of the one process)."""
    needle = f'"state": "{state}"'
    with contextlib.suppress(OSError):
        return log_path.read_text(encoding="utf-8", errors="replace").count(needle)
    return 0


def sweep(
    layout: str,
    counts: list[int],
    port: int,
    service_pid: int,
    sample: Path,
    work: Path,
    segmenter: str,
    stagger_s: float,
) -> list[Round]:
    """One layout's rounds, until one does not keep up."""
    rounds: list[Round] = []
    run = run_round if layout == "per-process" else run_one_process
    for streams in counts:
        result = run(streams, port, service_pid, sample, work, segmenter, stagger_s)
        print(ROW.format(layout, *astuple(result)), flush=True)
        rounds.append(result)
        if result.fallbacks or result.failed_workers:
            print(f"capacity: {layout}: {streams} streams did not keep up; its sweep stops here")
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
            for layout in layouts:
                stagger_s = SEGMENT_MS / 1000 if args.stagger else 0.0
                results[layout] = sweep(
                    layout,
                    counts[layout],
                    port,
                    service.pid,
                    sample,
                    work,
                    args.segmenter,
                    stagger_s,
                )
    finally:
        service.terminate()
        service.wait(timeout=30)
    for layout, rounds in results.items():
        verdict(layout, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
