"""Dub a generated sample through stream-worker in --realtime mode, over and over.

The worker side of the dev loop (`make dev` in its container, `make dev-local` from its venv);
every other setting comes from WORKER_* variables. A stop signal ends the pass and the loop (0).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from dev_sample import write_sample

#: stream-worker's exit status for bad options or settings: retrying cannot help.
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Run the loop until a signal (0); 2 for an unwritable sample or rejected settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where the WAV files go")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the sample")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:  # SIGTERM stops even its start quietly
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
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
    while not stopping.is_set():
        passes += 1
        started = time.monotonic()
        child = subprocess.Popen(command)
        if stopping.is_set():  # the signal came between the check above and the start
            child.send_signal(signal.SIGTERM)
        status = child.wait()
        if stopping.is_set():
            break
        print(f"dev-worker-loop: pass {passes} done (exit {status})", flush=True)
        if status == EXIT_USAGE:
            print("dev-worker-loop: stream-worker rejected its settings; stopping", file=sys.stderr)
            return EXIT_USAGE
        if status != 0 and time.monotonic() - started < 1.0:
            time.sleep(1.0)  # a failing worker must not spin
    print(f"dev-worker-loop: stopped after {passes} pass(es)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
