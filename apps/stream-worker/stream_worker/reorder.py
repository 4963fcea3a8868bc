"""Reorder buffer: emit segments strictly in sequence, never waiting past a segment's deadline.

Every segment is added *before* it is sent, with its original audio and a deadline, so a
segment whose request is rejected, lost or never answered is still in the buffer (an earlier
implementation's gap bug: a rejected fragment never reached the buffer and blocked every later
one; docs/decisions/0008-fallback-is-the-original-audio.md).
The head segment is emitted as soon as its result is in; once its deadline passes it is
emitted as its original audio (reason ``late``) and the segments behind it follow at once.
A result that arrives after its segment was emitted is dropped and counted.

The buffer itself is synchronous and takes the time as an argument, so it is tested with a
fake clock; :func:`run_emitter` drives it on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_worker.outcome import DubResult, FallbackReason

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Emitted:
    """A segment leaving the buffer, in sequence order.

    Attributes:
        sequence_number: Position in the stream.
        samples: What to write: the dubbed audio or the original.
        result: The dub result, or a fallback made by the buffer (late / shutdown).
        ready_at: When the segment's last input sample arrived (clock seconds).
        emitted_at: When it left the buffer.
        original: The segment's own audio (the same array as `samples` when not dubbed).
    """

    sequence_number: int
    samples: npt.NDArray[np.int16]
    result: DubResult
    ready_at: float
    emitted_at: float
    original: npt.NDArray[np.int16] | None = None

    @property
    def dubbed(self) -> bool:
        """Whether dubbed audio (not the original) is written."""
        return self.result.audio is not None


@dataclass
class _Entry:
    original: npt.NDArray[np.int16]
    ready_at: float
    deadline: float
    expiry_reason: FallbackReason = FallbackReason.LATE
    result: DubResult | None = None


class ReorderBuffer:
    """Holds segments until they can be emitted in order.

    Example:
        >>> buf = ReorderBuffer()
        >>> a = np.zeros((2, 1), dtype=np.int16)
        >>> buf.add(0, a, ready_at=0.0, deadline=1.0)
        >>> buf.add(1, a, ready_at=0.0, deadline=1.0)
        >>> _ = buf.resolve(1, DubResult(audio=a, reason=None))
        >>> [e.sequence_number for e in buf.pop_ready(now=0.5)]
        []
        >>> [(e.sequence_number, e.result.reason) for e in buf.pop_ready(now=1.0)]
        [(0, <FallbackReason.LATE: 'late'>), (1, None)]
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._next_emit = 0
        self._next_add = 0
        self._closed = False
        #: Results that arrived after their segment had been emitted as original audio.
        self.late_dropped = 0

    @property
    def pending(self) -> int:
        """Segments added but not yet emitted."""
        return len(self._entries)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (no more segments will be added)."""
        return self._closed

    @property
    def finished(self) -> bool:
        """Closed and every segment emitted."""
        return self._closed and not self._entries

    def add(
        self,
        sequence_number: int,
        original: npt.NDArray[np.int16],
        *,
        ready_at: float,
        deadline: float,
    ) -> None:
        """Register a segment before it is sent.

        Raises:
            ValueError: if the buffer is closed or the sequence number is not the next one.
        """
        if self._closed:
            raise ValueError("reorder buffer is closed; no segment can be added")
        if sequence_number != self._next_add:
            raise ValueError(
                f"segment {sequence_number} added out of order; expected {self._next_add}"
            )
        self._entries[sequence_number] = _Entry(original, ready_at, deadline)
        self._next_add += 1

    def resolve(self, sequence_number: int, result: DubResult) -> bool:
        """Record the result of a segment.

        Returns:
            True if it will be used; False if the segment was already emitted (a late
            arrival, dropped and counted in `late_dropped`).

        Raises:
            ValueError: for a segment that was never added, or a second result.
        """
        entry = self._entries.get(sequence_number)
        if entry is None:
            if sequence_number < self._next_emit:
                self.late_dropped += 1
                logger.info(
                    "segment %d answered after it was written as original audio; dropped",
                    sequence_number,
                    extra={"sequence_number": sequence_number},
                )
                return False
            raise ValueError(f"segment {sequence_number} was never added")
        if entry.result is not None:
            raise ValueError(f"segment {sequence_number} already has a result")
        entry.result = result
        return True

    def next_deadline(self) -> float | None:
        """The deadline of the head segment if it is still waiting, else ``None``."""
        entry = self._entries.get(self._next_emit)
        if entry is None or entry.result is not None:
            return None
        return entry.deadline

    def pop_ready(self, now: float) -> list[Emitted]:
        """Emit, in order, every head segment that has a result or whose deadline passed."""
        out: list[Emitted] = []
        while True:
            entry = self._entries.get(self._next_emit)
            if entry is None:
                break
            result = entry.result
            if result is None:
                if now < entry.deadline:
                    break
                result = DubResult.fallback(
                    entry.expiry_reason, "no answer by the segment's deadline"
                )
            samples = entry.original if result.audio is None else result.audio
            out.append(
                Emitted(self._next_emit, samples, result, entry.ready_at, now, entry.original)
            )
            del self._entries[self._next_emit]
            self._next_emit += 1
        return out

    def expire_all(self, at: float, reason: FallbackReason) -> None:
        """Bring every waiting segment's deadline forward to `at`, with `reason` on expiry."""
        for entry in self._entries.values():
            if entry.result is None and entry.deadline >= at:
                entry.deadline = at
                entry.expiry_reason = reason

    def close(self) -> None:
        """No more segments will be added."""
        self._closed = True


async def run_emitter(
    buffer: ReorderBuffer,
    write: Callable[[Emitted], None],
    wakeup: asyncio.Event,
    clock: Callable[[], float],
) -> None:
    """Write segments as they become ready until the buffer is closed and empty.

    Args:
        buffer: The reorder buffer.
        write: Called for every emitted segment, in order.
        wakeup: Set by whoever adds, resolves, expires or closes (the loop then re-checks).
        clock: The clock the deadlines use.
    """
    while True:
        wakeup.clear()
        for emitted in buffer.pop_ready(clock()):
            write(emitted)
        if buffer.finished:
            return
        deadline = buffer.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock())
        try:
            await asyncio.wait_for(wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass
