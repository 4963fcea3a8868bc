"""SIGINT and SIGTERM are noted from the first moment, never fatal.

stream-worker promises that, once the output is named, a stop signal at any moment gives
exit 0 and a valid (possibly empty) output file. Python's defaults break that promise in
every moment the pipeline's own handler is not installed: a KeyboardInterrupt traceback
(exit 130) or death by SIGTERM (exit 143) during the imports, the health check or the
summary. So the console script installs :data:`STOP_SIGNALS` before it imports anything
heavy, and the run checks :attr:`StopSignals.received` when it takes over.

This module imports only the standard library, so that installing it is fast.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals"]


class StopSignals:
    """Notes SIGINT/SIGTERM instead of dying, until :meth:`restore`.

    A signal that is ignored when the process starts (a job started with ``&`` from a
    non-interactive shell ignores SIGINT) stays ignored, as it would with Python's default.
    """

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Note stop signals from now on; False if they were noted already (idempotent)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False  # only the main thread may set signal handlers
        for signum in self.signals:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._note)
        return True

    def take_back(self) -> None:
        """Note stop signals again after someone else (the event loop) handled them."""
        for signum in self._previous:
            signal.signal(signum, self._note)

    @property
    def handled(self) -> tuple[int, ...]:
        """The signals being noted (the ones that were not ignored at start)."""
        return tuple(self._previous)

    def restore(self) -> None:
        """Give the signals back to the handlers they had before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self.received = None

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum


#: The process's stop signals (one per process, like the signals themselves).
STOP_SIGNALS = StopSignals()
