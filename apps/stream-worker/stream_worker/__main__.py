"""`python -m stream_worker` and the `stream-worker` console script.

The stop signals are taken over before the heavy imports (numpy, httpx, pydantic: up to a
second on a busy machine), so a signal that arrives during them still ends in exit 0 with a
valid output file instead of a traceback.
"""

from __future__ import annotations

from stream_worker.signals import STOP_SIGNALS


def main() -> int:
    """Take over SIGINT/SIGTERM, then import and run the command line."""
    STOP_SIGNALS.install()
    from stream_worker.main import main as run  # imported after the signals, on purpose

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
