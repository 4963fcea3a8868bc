"""Audio input: raw PCM on stdin, pacing at real time, and the reader thread.

Files and live URLs are read by :class:`stream_worker.demux.MediaSource` (FFmpeg).

Readers are plain (blocking) iterators of ``int16`` ``(frames, channels)`` chunks. The pipeline
runs them on a daemon thread (:class:`ThreadedChunks`) so a blocking read on a live pipe never
stalls the event loop, and a bounded hand-over queue makes a busy pipeline push back on the
reader instead of buffering without limit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat
from stream_worker import conversions

logger = logging.getLogger(__name__)

Chunk = npt.NDArray[np.int16]

#: How much audio one read asks for: small when paced (smooth pacing), larger otherwise.
REALTIME_CHUNK_MS = 20
BULK_CHUNK_MS = 1000
#: Chunks the reader thread may run ahead of the pipeline.
QUEUE_CHUNKS = 4


@dataclass
class InputStats:
    """What a reader saw: frames read and bytes of a trailing partial frame it dropped."""

    frames: int = 0
    trailing_bytes_dropped: int = 0


class RawPcmReader:
    r"""Read raw interleaved PCM S16LE from a binary stream (e.g. stdin) in whole frames.

    Reads return whatever the pipe has (``read1``), so a live source is not held back until a
    full chunk arrives. Bytes of a frame split across reads are carried over. A stream that
    ends in the middle of a frame (a cut pipe) has that partial frame dropped with a warning:
    it is not a sample of any channel, so it cannot be kept, and the output promise covers
    whole frames. The count is in `stats.trailing_bytes_dropped` and the summary.

    Args:
        stream: A binary stream; ``read1`` is used when it exists.
        fmt: The format of the bytes (S16LE).
        chunk_ms: Largest read, in milliseconds of audio.

    Example:
        >>> import io
        >>> reader = RawPcmReader(io.BytesIO(b"\x01\x00\x02"), AudioFormat(16000, 1))
        >>> [c.ravel().tolist() for c in reader], reader.stats.trailing_bytes_dropped
        ([[1]], 1)
    """

    def __init__(self, stream: BinaryIO, fmt: AudioFormat, chunk_ms: int = BULK_CHUNK_MS) -> None:
        self.format = fmt
        self.stats = InputStats()
        self._stream = stream
        self._read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
        self._read_size = max(fmt.frame_bytes, fmt.frames_for_ms(chunk_ms) * fmt.frame_bytes)

    def __iter__(self) -> Iterator[Chunk]:
        frame = self.format.frame_bytes
        carry = b""
        while True:
            data = self._read(self._read_size)
            if not data:
                break
            if carry:
                data = carry + data
            whole = len(data) - len(data) % frame
            carry = data[whole:]
            if whole:
                chunk = conversions.from_pcm(data[:whole], self.format)
                self.stats.frames += chunk.shape[0]
                yield chunk
        if carry:
            self.stats.trailing_bytes_dropped = len(carry)
            logger.warning(
                "input ended in the middle of a frame: dropped the trailing %d byte(s) of a "
                "%d-byte frame",
                len(carry),
                frame,
                extra={"trailing_bytes_dropped": len(carry)},
            )


def paced(
    chunks: Iterator[Chunk],
    fmt: AudioFormat,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Chunk]:
    """Release each chunk when its last sample would have arrived from a live source.

    Args:
        chunks: The chunks of a file.
        fmt: Their format (for the sample rate).
        clock: Monotonic clock in seconds.
        sleep: Blocking sleep.

    Yields:
        The same chunks, no earlier than real time.
    """
    start = clock()
    frames = 0
    for chunk in chunks:
        frames += chunk.shape[0]
        wait = start + frames / fmt.sample_rate - clock()
        if wait > 0:
            sleep(wait)
        yield chunk


@dataclass
class _Handover:
    """State shared between the reader thread and the event loop."""

    # Free read-ahead places, one token each: a SimpleQueue, whose put and get run in C,
    # rather than a threading.Semaphore, whose Condition runs in Python on the event loop at
    # every chunk (with 100 streams, 5000 chunks a second).
    slots: queue.SimpleQueue[None]
    closed: threading.Event = field(default_factory=threading.Event)


_END = object()


def _take(slots: queue.SimpleQueue[None], timeout_s: float) -> bool:
    """Take a read-ahead place; False if none came free within `timeout_s`."""
    try:
        slots.get(timeout=timeout_s)
    except queue.Empty:
        return False
    return True


class ThreadedChunks:
    """Run a blocking chunk iterator on a daemon thread and hand chunks to the event loop.

    At most `max_ahead` chunks wait in the queue: when the pipeline is busy the thread blocks,
    which is the backpressure a live pipe needs. :meth:`close` makes :meth:`get` return
    ``None`` at once (used on SIGINT/SIGTERM); the thread is a daemon, so one stuck in a read
    on a silent pipe never keeps the process alive.

    Args:
        chunks: The blocking iterator.
        loop: The event loop the consumer runs on (default: the one running at :meth:`start`).
        max_ahead: Chunks the thread may read ahead.
    """

    def __init__(
        self,
        chunks: Iterator[Chunk],
        loop: asyncio.AbstractEventLoop | None = None,
        max_ahead: int = QUEUE_CHUNKS,
    ) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._chunks = chunks
        self._loop = loop
        self._state = _Handover(queue.SimpleQueue())
        for _ in range(max_ahead):
            self._state.slots.put(None)
        self._done = False

    def start(self) -> None:
        """Start the reader thread."""
        loop = self._loop or asyncio.get_running_loop()
        threading.Thread(
            target=self._run, args=(self._chunks, loop), name="stream-worker-reader", daemon=True
        ).start()

    def _post(self, loop: asyncio.AbstractEventLoop, item: object) -> None:
        try:
            loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._state.closed.set()

    def _run(self, chunks: Iterator[Chunk], loop: asyncio.AbstractEventLoop) -> None:
        state = self._state
        try:
            for chunk in chunks:
                while not _take(state.slots, 0.1):
                    if state.closed.is_set():
                        return
                if state.closed.is_set():
                    return
                self._post(loop, chunk)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._post(loop, exc)
            return
        self._post(loop, _END)

    async def get(self) -> Chunk | None:
        """The next chunk, or ``None`` at the end of the input or after :meth:`close`.

        Raises:
            Exception: whatever the reader raised (e.g. a truncated WAV file).
        """
        if self._done:
            return None
        item = await self._queue.get()
        if item is _END:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._state.slots.put(None)
        return item  # type: ignore[return-value]  # only chunks, _END or exceptions are queued

    def close(self) -> None:
        """Stop handing out chunks: a pending or later :meth:`get` returns ``None``."""
        self._state.closed.set()
        self._queue.put_nowait(_END)

    async def drain(self) -> list[Chunk]:
        """After :meth:`close`: the chunks already read and handed over but not yet taken."""
        await asyncio.sleep(0)  # let hand-overs scheduled before close() land in the queue
        chunks: list[Chunk] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, np.ndarray):
                chunks.append(item)
        return chunks
