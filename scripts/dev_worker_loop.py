"""Dub a generated sample through stream-worker in --realtime mode, over and over.

The worker side of the dev loop, the same in both topologies: `make dev` runs it in the
stream-worker container and `make dev-local` with the stream-worker venv's interpreter. It
writes ``WORKDIR/sample.wav`` (speech-like, see dev_sample.py), then runs
``python -m stream_worker --input WORKDIR/sample.wav --output WORKDIR/dubbed.wav --realtime``
again and again; every pass ends with the worker's JSON summary line. The worker reads every
other setting (the STS URL, languages, segment length, ...) from its WORKER_* variables.

SIGINT or SIGTERM stops the current pass gracefully (the worker finishes what is in flight and
prints its summary) and ends the loop with status 0. Standard library only.

    python scripts/dev_worker_loop.py --workdir /data --seconds 8 [--passes N]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from dev_sample import write_sample

#: stream-worker's exit status for bad options or settings: retrying cannot help.
EXIT_USAGE = 2
STOP_GRACE_S = 15.0


class _Loop:
    def __init__(self) -> None:
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def is_stopping(self) -> bool:
        """Whether a signal asked the loop to stop (a method: it changes under our feet)."""
        return self.stopping

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            # SIGTERM, not SIGINT: stream-worker stops gracefully on either, but a worker still
            # starting up (no handler yet) dies quietly of SIGTERM, where SIGINT would print a
            # KeyboardInterrupt traceback from the middle of Python's start-up.
            self.child.send_signal(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run the loop; returns 0 when stopped by a signal or after `--passes` passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where the WAV files go")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the sample")
    parser.add_argument("--passes", type=int, default=0, help="stop after N passes (0: never)")
    args = parser.parse_args(argv)

    loop = _Loop()
    signal.signal(signal.SIGINT, loop.on_signal)
    signal.signal(signal.SIGTERM, loop.on_signal)
    try:
        sample = write_sample(args.workdir / "sample.wav", args.seconds)
    except (ValueError, OSError) as exc:
        print(f"dev-worker-loop: cannot write the sample: {exc}", file=sys.stderr)
        return 2
    output = args.workdir / "dubbed.wav"
    command = [sys.executable, "-m", "stream_worker", "--input", str(sample)]
    command += ["--output", str(output), "--realtime"]
    print(f"dev-worker-loop: dubbing {sample} ({args.seconds:g} s) into {output}, looping")
    sys.stdout.flush()
    passes = 0
    while not loop.stopping and (args.passes == 0 or passes < args.passes):
        passes += 1
        started = time.monotonic()
        loop.child = subprocess.Popen(command)
        if loop.is_stopping():  # the signal came between the check above and the start
            loop.child.send_signal(signal.SIGTERM)
        try:
            status = loop.child.wait(timeout=None)
        finally:
            if loop.child.poll() is None:  # pragma: no cover - only on an exception above
                loop.child.kill()
        if loop.is_stopping():
            break
        print(f"dev-worker-loop: pass {passes} done (exit {status})")
        sys.stdout.flush()
        if status == EXIT_USAGE:
            print("dev-worker-loop: stream-worker rejected its settings; stopping", file=sys.stderr)
            return EXIT_USAGE
        if status != 0 and time.monotonic() - started < 1.0:
            time.sleep(1.0)  # a failing worker must not spin
    if loop.child is not None:
        try:
            loop.child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            loop.child.kill()
            loop.child.wait()
    print(f"dev-worker-loop: stopped after {passes} pass(es)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
