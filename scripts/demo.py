"""`make demo`: dub a generated sample through sts-service and stream-worker, end to end.

Needs only `make install`: offline, and the caller's STS_*/WORKER_* variables are ignored, so
it always runs the same way. It starts sts-service on a free port, dubs a 10 s speech-like
sample with stream-worker (not paced), prints the worker's summary and stops sts-service.
Exits non-zero naming the step if a step fails or a segment was not dubbed; a stop signal
stops everything it started, quietly, and exits 128 + the signal number.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from dev_sample import write_sample
from devproc import DevError, clean_env, cli, free_port, running, say, stream_worker, sts_service

NAME = "demo"
SAMPLE_SECONDS = 10.0
HEALTH_TIMEOUT_S = 30.0
WORKER_TIMEOUT_S = 60.0


async def dub(
    source: Path, output: Path, url: str, env: dict[str, str], timeout_s: float, *options: str
) -> dict[str, Any]:
    """Dub `source` into `output` with the stream-worker CLI; its summary (written beside)."""
    summary = output.with_name("summary.json")
    summary.unlink(missing_ok=True)
    command = ["-m", "stream_worker", "--input", str(source), "--output", str(output)]
    command += ["--sts-url", url, "--require-sts", "--summary-json", str(summary)]
    async with running(stream_worker(*command, "--log-format", "console", *options, env=env)) as w:
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


async def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 on success."""
    started = time.monotonic()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env()
    sts_env = {**env, "STS_HOST": "127.0.0.1", "STS_PORT": str(port), "STS_LOG_FORMAT": "console"}
    output = args.workdir / "dubbed.wav"
    say(NAME, f"1/4 starting sts-service on {url}")
    try:
        async with sts_service(url, sts_env, HEALTH_TIMEOUT_S):
            sample = write_sample(args.workdir / "sample.wav", SAMPLE_SECONDS)
            say(NAME, f"2/4 wrote a {SAMPLE_SECONDS:g} s speech-like sample: {sample}")
            say(NAME, "3/4 dubbing it through stream-worker")
            summary = await dub(sample, output, url, env, WORKER_TIMEOUT_S)
    finally:
        say(NAME, "4/4 stopped sts-service")
    problems = check_summary(summary)
    if problems:
        raise DevError("; ".join(problems))
    segments = summary["segments"]
    print(f"""
demo: OK, dubbed output produced
  input        {sample} ({summary["audio_s"]} s)
  output       {output}
  summary      {output.with_name("summary.json")}
  segments     {segments["total"]} total, {segments["dubbed"]} dubbed, 0 fallback
  worker time  {summary["wall_s"]} s (real-time factor {summary["real_time_factor"]})
  demo time    {time.monotonic() - started:.1f} s""")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line (see --help)."""
    return cli(NAME, __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
