"""`make demo`: dub a generated sample through sts-service and stream-worker, end to end.

Needs only `make install`: no network, no configuration (STS_* and WORKER_* variables of the
caller are ignored, so the demo always runs the same way). It starts sts-service on a free
port of 127.0.0.1, waits for its health route, writes a 10 s speech-like sample, dubs it with
stream-worker (as fast as possible, not paced), prints the worker's summary and where the
output is, and stops sts-service. Exits non-zero, naming the step, if any step fails or if a
segment was not dubbed. Ctrl-C, SIGTERM or SIGHUP stop it at any step, quietly: it stops
what it started and exits 128 + the signal number. Standard library only: it runs from the
root tools env.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from dev_sample import write_sample
from devproc import (
    HEALTH_PATH,
    REPO,
    STREAM_WORKER,
    STS_SERVICE,
    DevError,
    Service,
    free_port,
    run_supervised,
    venv_python,
    wait_healthy,
)

SAMPLE_SECONDS = 10.0
HEALTH_TIMEOUT_S = 30.0
WORKER_TIMEOUT_S = 60.0


def clean_env() -> dict[str, str]:
    """The caller's environment without any STS_* or WORKER_* variable."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("STS_", "WORKER_"))
    }


def check_summary(summary: dict[str, object]) -> list[str]:
    """What is wrong with a worker summary for the demo to count as a success."""
    problems: list[str] = []
    segments = summary.get("segments")
    if not isinstance(segments, dict) or not segments.get("total"):
        return ["the worker dubbed no segment"]
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


async def run(workdir: Path) -> int:
    """Run the demo; returns 0 on success."""
    started = time.monotonic()
    sts_python = venv_python(STS_SERVICE)
    worker_python = venv_python(STREAM_WORKER)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env()
    sts_env = {**env, "STS_HOST": "127.0.0.1", "STS_PORT": str(port), "STS_LOG_FORMAT": "console"}
    sts = Service("sts-service", [str(sts_python), "-m", "sts_service"], sts_env)
    worker: Service | None = None
    _say(f"1/4 starting sts-service on {url}")
    try:
        await sts.start()
        await wait_healthy(sts, url + HEALTH_PATH, HEALTH_TIMEOUT_S)
        sample = write_sample(workdir / "sample.wav", SAMPLE_SECONDS)
        _say(f"2/4 wrote a {SAMPLE_SECONDS:g} s speech-like sample: {sample}")
        output = workdir / "dubbed.wav"
        summary_path = workdir / "summary.json"
        summary_path.unlink(missing_ok=True)
        command = [str(worker_python), "-m", "stream_worker", "--input", str(sample)]
        command += ["--output", str(output), "--sts-url", url, "--require-sts"]
        command += ["--summary-json", str(summary_path), "--log-format", "console"]
        _say("3/4 dubbing it through stream-worker")
        worker = Service("stream-worker", command, env)
        await worker.start()
        try:
            status = await asyncio.wait_for(worker.wait(), WORKER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise DevError(f"stream-worker did not finish within {WORKER_TIMEOUT_S:g} s") from None
        if status != 0:
            raise DevError(f"stream-worker exited with status {status} (its log is above)")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DevError(f"stream-worker wrote no readable summary: {exc}") from None
    finally:
        # Whatever ends the demo (success, a failed step, a signal), nothing it started stays.
        if worker is not None:
            # SIGTERM, not SIGINT: stream-worker stops gracefully on either, but one still
            # starting up dies quietly of SIGTERM, where SIGINT prints a traceback.
            await worker.stop(signal.SIGTERM, 5.0, group=False)
        await sts.stop(signal.SIGTERM, 10.0)
        _say("4/4 stopped sts-service")
    problems = check_summary(summary)
    if problems:
        raise DevError("; ".join(problems))
    segments = summary["segments"]
    print()
    print("demo: OK, dubbed output produced")
    print(f"  input        {sample} ({summary['audio_s']} s)")
    print(f"  output       {output}")
    print(f"  summary      {summary_path}")
    print(f"  segments     {segments['total']} total, {segments['dubbed']} dubbed, 0 fallback")
    print(f"  worker time  {summary['wall_s']} s (real-time factor {summary['real_time_factor']})")
    print(f"  demo time    {time.monotonic() - started:.1f} s")
    return 0


def _say(message: str) -> None:
    print(f"demo: {message}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Command line: ``demo.py [--workdir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".make" / "demo", help="where the files go"
    )
    args = parser.parse_args(argv)
    try:
        result = run_supervised(lambda: run(args.workdir.resolve()))
    except (DevError, OSError, ValueError) as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, signal.Signals):
        print(f"demo: stopped by {result.name}; nothing it started is left running")
        return 128 + result.value  # the shell's convention for "killed by this signal"
    return result


if __name__ == "__main__":
    raise SystemExit(main())
