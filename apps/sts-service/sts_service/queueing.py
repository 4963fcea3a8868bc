"""Fair slots of a blocking engine: bounded calls and queue, served round-robin by stream.

A call that finds every slot taken waits in its stream's line. A freed slot goes to the next
stream in turn, not to the oldest waiter, so a stream that sends four times its share waits
behind itself while the others keep their pace. When the queue is full, a newcomer from a
stream with fewer waiters than the longest line takes the place of that line's newest
waiter, which is refused instead: the flooding stream is the one told to come back later.

A slot is counted until the worker thread really finishes (`release` is thread-safe and may
be called from any thread), so an engine never runs more than `limit` calls at once, whatever
the clients do.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["FairSlots", "QueueFullError"]


class QueueFullError(Exception):
    """Every slot is taken and the queue holds the caller's fair share already: retry later."""


class _State(Enum):
    WAITING = "waiting"
    GRANTED = "granted"
    REFUSED = "refused"


@dataclass(eq=False)
class _Waiter:
    key: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    state: _State = field(default=_State.WAITING)


class FairSlots:
    """At most `limit` calls at once and `queue` waiting, served round-robin by stream.

    Args:
        limit: Most calls running at once (``STS_STAGE_CONCURRENCY``).
        queue: Most calls waiting for a slot (``STS_STAGE_QUEUE``); beyond, ``QUEUE_FULL``.

    Example:
        >>> slots = FairSlots(limit=1, queue=0)
        >>> asyncio.run(slots.acquire("stream-a"))
        >>> slots.running, slots.waiting
        (1, 0)
    """

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self._lock = threading.Lock()
        self._free = limit
        self._lines: dict[str, deque[_Waiter]] = {}
        self._turns: deque[str] = deque()  # streams with waiters, next to be served first
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot now."""
        return self._waiting

    @property
    def running(self) -> int:
        """Slots taken now."""
        return self.limit - self._free

    async def acquire(self, key: str) -> None:
        """Take a slot for stream `key`, waiting in its line if there is room.

        Raises:
            QueueFullError: when the queue is full and `key` already has its fair share of it.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            evicted = None
            if self._waiting >= self.queue:
                evicted = self._evict_for(key)
                if evicted is None:
                    raise self._full()
            waiter = _Waiter(key, loop, loop.create_future())
            self._lines.setdefault(key, deque()).append(waiter)
            if len(self._lines[key]) == 1:
                self._turns.append(key)
            self._waiting += 1
        if evicted is not None:
            self._wake(evicted)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                state = waiter.state
                if state is _State.WAITING:
                    self._remove(waiter)
            if state is _State.GRANTED:  # the slot came as the wait was given up: pass it on
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back: to the next stream in turn, or to the free pool."""
        with self._lock:
            if not self._turns:
                self._free += 1
                return
            key = self._turns.popleft()
            line = self._lines[key]
            waiter = line.popleft()
            if line:
                self._turns.append(key)
            else:
                del self._lines[key]
            self._waiting -= 1
            waiter.state = _State.GRANTED
        self._wake(waiter)

    def _full(self) -> QueueFullError:
        return QueueFullError(
            f"{self.limit} call(s) running and {self._waiting} waiting "
            "(STS_STAGE_CONCURRENCY, STS_STAGE_QUEUE); retry shortly",
        )

    def _evict_for(self, key: str) -> _Waiter | None:
        """Refuse the newest waiter of the longest line if `key` has fewer than it minus one."""
        mine = len(self._lines.get(key, ()))
        longest = max(self._lines, key=lambda k: len(self._lines[k]), default=None)
        if longest is None or len(self._lines[longest]) <= mine + 1:
            return None
        victim = self._lines[longest][-1]
        self._remove(victim)
        victim.state = _State.REFUSED
        return victim

    def _remove(self, waiter: _Waiter) -> None:
        line = self._lines[waiter.key]
        line.remove(waiter)
        if not line:
            del self._lines[waiter.key]
            self._turns.remove(waiter.key)
        self._waiting -= 1

    def _wake(self, waiter: _Waiter) -> None:
        """Tell a waiter, on its own loop, that it got a slot or was refused."""
        error = self._full() if waiter.state is _State.REFUSED else None

        def settle() -> None:
            if waiter.future.done():  # cancelled meanwhile; its own handler saw the state
                return
            if error is None:
                waiter.future.set_result(None)
            else:
                waiter.future.set_exception(error)

        try:
            waiter.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # its loop is closed: nobody will take the slot
            if waiter.state is _State.GRANTED:
                self.release()
