"""The pipeline: read -> segment -> send (bounded in flight) -> reorder -> fit -> write.

Its promise: the output has exactly as many frames as the input, and a segment that is not
dubbed in time is written as its original audio. Each segment enters the reorder buffer,
with its original audio and a deadline, *before* its request is sent; so whatever happens to
the request (error, rejection, timeout, hang, crash of the worker's own task) the segment is
written, in order, by its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from shared_audio import AudioError, AudioFormat, is_speech
from stream_worker.client import StsClient
from stream_worker.latency import Timing, segment_record
from stream_worker.outcome import DubResult, FallbackReason
from stream_worker.policy import dub
from stream_worker.progress import Progress
from stream_worker.reorder import Emitted, ReorderBuffer, run_emitter
from stream_worker.segmenter import Cutter, FixedCutter, Span
from stream_worker.sink import Sink
from stream_worker.source import InputStats, ThreadedChunks
from stream_worker.summary import RunStats

logger = logging.getLogger(__name__)

#: Slack between the client's own deadline and the reorder buffer's: the client answers
#: first in normal operation, the buffer's deadline is the safety net behind it.
DEADLINE_GRACE_S = 0.25
#: Live: the reorder buffer's deadline is this long before the segment's output slot (time
#: to hand the audio to the sink), and the client's this long before the buffer's.
SLOT_GRACE_S = 0.25
CLIENT_GRACE_S = 0.05
#: A cut at the maximum length (or a fixed cut) is inside speech when the last this-many ms
#: before it hold speech; one in silence (a fixed cut in a pause) split no word, and the
#: next segment goes without context audio.
CUT_IN_SPEECH_MS = 200


@dataclass
class PipelineOptions:
    """What the pipeline needs from the settings.

    Attributes:
        segment_ms: Segment length of the default cutter (fixed cuts) in milliseconds.
        max_inflight: Requests in flight at most (backpressure on the reader beyond it).
        timeout_ms: Per-segment deadline.
        shutdown_grace_ms: On stop, how long in-flight segments may still finish.
        max_delay_ms: Live output: a segment must be written this long after its first
            sample arrived (the output's fixed delay), dubbed or not; None for no limit.
        context_ms: After a cut inside speech (at the maximum length, not at a pause), this
            much of the audio before the next segment goes with it, for ASR to hear the
            word the cut split whole; 0 sends none.
    """

    segment_ms: int
    max_inflight: int
    timeout_ms: int
    shutdown_grace_ms: int = 2000
    max_delay_ms: int | None = None
    context_ms: int = 0


@dataclass
class PipelineOutcome:
    """What a finished run reports.

    Attributes:
        stats: Counts and latencies.
        late_dropped: Answers that came after their segment was written as original audio.
        interrupted: Whether a stop (SIGINT/SIGTERM) cut the input short.
        input_error: The error that ended the input early, if any.
        wall_s: Wall-clock duration of the run.
        input_frames: Frames taken from the input (all of them written).
    """

    stats: RunStats
    late_dropped: int
    interrupted: bool
    input_error: str | None
    wall_s: float
    input_frames: int = 0


class StreamDubber:
    """Dubs one stream, once: everything a run needs is made here, :meth:`run` uses it.

    (Named apart from sts-service's ``Pipeline``, which dubs one fragment.)

    Args:
        client: The sts-service client (its breaker and deadline apply per segment).
        chunks: The input: an iterable of ``int16`` ``(frames, channels)`` chunks (read on a
            daemon thread).
        fmt: The input's format.
        sink: The output.
        options: Segment size, in-flight limit, deadlines.
        progress_stream: Where progress is drawn (stderr), when `progress` is True.
        progress: Whether to draw progress.
        total_s: Duration of a file input (for the progress bar's ETA), ``None`` if live.
        clock: Monotonic clock in seconds.
        cutter: Where the stream is cut (default: fixed cuts of `options.segment_ms`).
        segment_log: Called with one JSON-ready record per written segment, in order
            (`stream_worker.latency.segment_record`).
        mix: What to write for a segment instead of its dub or original (voice-over:
            `stream_worker.voiceover.VoiceOver.mix`); None writes the segment as it is.
        on_written: Called after each segment is written, with the segment and the output
            frame it starts at (captions: `stream_worker.captions.Captioner.written`).
    """

    def __init__(
        self,
        client: StsClient,
        chunks: Iterable[npt.NDArray[np.int16]],
        fmt: AudioFormat,
        sink: Sink,
        options: PipelineOptions,
        *,
        progress_stream: TextIO | None = None,
        progress: bool = False,
        total_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        cutter: Cutter | None = None,
        segment_log: Callable[[dict[str, Any]], None] | None = None,
        mix: Callable[[Emitted], npt.NDArray[np.int16]] | None = None,
        on_written: Callable[[Emitted, int], None] | None = None,
    ) -> None:
        self._client = client
        self._fmt = fmt
        self._sink = sink
        self._options = options
        self._clock = clock
        self._segmenter = cutter or FixedCutter(fmt, options.segment_ms)
        self._segment_log = segment_log
        self._mix = mix
        self._on_written = on_written
        self._written_frames = 0
        # Run clock at which the input's frame 0 arrived: the earliest (arrival - position)
        # over all chunks, so a chunk that comes late does not move the live slots.
        self._origin: float | None = None
        # The newest transcript so far (sequence number, text): context for the next request.
        self._context: tuple[int, str] | None = None
        # The end of the last segment sent, when a cut inside speech ended it: (its end
        # frame, its last `context_ms` of audio), to go with the segment that starts there.
        self._cut_tail: tuple[int, npt.NDArray[np.int16]] | None = None
        self._buffer = ReorderBuffer()
        self._stats = RunStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._ran = False
        # asyncio primitives bind to the running loop on first use, so they can be made here.
        self._stop_event = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(options.max_inflight)
        self._reader = ThreadedChunks(iter(chunks))
        self._progress = Progress(total_s, progress_stream, enabled=progress)
        self._started = clock()

    @property
    def stats(self) -> RunStats:
        """Counts and latencies so far."""
        return self._stats

    def request_stop(self) -> None:
        """Stop reading; give in-flight segments the shutdown grace, then fall back.

        Safe to call from a signal handler on the event loop, and more than once.
        """
        if self._stopping:
            return
        self._stopping = True
        logger.warning(
            "stopping: input closed; in-flight segments get %d ms, then original audio",
            self._options.shutdown_grace_ms,
        )
        self._reader.close()
        self._stop_event.set()
        self._buffer.expire_all(
            self._clock() + self._options.shutdown_grace_ms / 1000, FallbackReason.SHUTDOWN
        )
        self._wakeup.set()

    async def run(self) -> PipelineOutcome:
        """Process the whole input and write every frame of it. Returns the outcome.

        Raises:
            OSError: if the output cannot be written (the run stops at once).
            RuntimeError: if it already ran (its input is consumed).
        """
        if self._ran:
            raise RuntimeError("a StreamDubber runs once: its input has been consumed")
        self._ran = True
        self._started = self._clock()
        self._reader.start()
        emitter = asyncio.create_task(
            run_emitter(self._buffer, self._write, self._wakeup, self._clock)
        )
        emitter.add_done_callback(self._on_emitter_done)
        input_error: str | None = None
        try:
            input_error = await self._read_all()
        finally:
            self._buffer.close()
            self._wakeup.set()
            try:
                await emitter
            finally:
                await self._cancel_tasks()
                self._progress.close()
        return PipelineOutcome(
            stats=self._stats,
            late_dropped=self._buffer.late_dropped,
            interrupted=self._stopping,
            input_error=input_error,
            wall_s=self._clock() - self._started,
            input_frames=self._segmenter.frames_fed,
        )

    async def _read_all(self) -> str | None:
        input_error: str | None = None
        now = self._clock()
        while not self._stopping:
            try:
                chunk = await self._reader.get()
            except (AudioError, OSError) as exc:
                input_error = str(exc)
                logger.error("input error, ending the input here: %s", exc)
                break
            if chunk is None:
                break
            now = self._clock()
            spans = self._segmenter.feed(chunk)
            origin = now - self._fmt.duration_s(self._segmenter.frames_fed)
            self._origin = origin if self._origin is None else min(self._origin, origin)
            for span in spans:
                await self._submit(span, now)
        if self._stopping:  # keep what was already read: it falls back, it is not lost
            for chunk in await self._reader.drain():
                for span in self._segmenter.feed(chunk):
                    await self._submit(span, now)
        for span in self._segmenter.flush():
            await self._submit(span, now)
        return input_error

    async def _acquire_slot(self) -> bool:
        """Wait for an in-flight slot (backpressure); False if a stop came first."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        acquire = asyncio.ensure_future(self._slots.acquire())
        stop = asyncio.ensure_future(self._stop_event.wait())
        done, _ = await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if acquire in done:
            return True
        acquire.cancel()
        return False

    def _slot(self, start_frame: int) -> float | None:
        """Live: when the segment starting at `start_frame` must go out; None otherwise."""
        if self._options.max_delay_ms is None:
            return None
        origin = self._started if self._origin is None else self._origin
        return origin + self._fmt.duration_s(start_frame) + self._options.max_delay_ms / 1000

    async def _submit(self, span: Span, ready_at: float) -> None:
        """Register the segment in the reorder buffer, then send it (or fall back at once).

        A segment without speech is not sent: it is written as it came, as soon as its turn
        comes.
        """
        segment = span.segment
        seq = segment.sequence_number
        samples: npt.NDArray[np.int16] = segment.samples
        heard_before = self._heard_before(span)
        if not span.speech:
            self._buffer.add(seq, samples, ready_at=ready_at, deadline=ready_at)
            self._buffer.resolve(seq, DubResult.not_speech())
            self._wakeup.set()
            return
        acquired = not self._stopping and await self._acquire_slot()
        if acquired and self._stopping:  # a stop came while we waited for the slot
            self._slots.release()
            acquired = False
        if not acquired:
            self._buffer.add(seq, samples, ready_at=ready_at, deadline=self._clock())
            self._buffer.resolve(
                seq, DubResult.fallback(FallbackReason.SHUTDOWN, "stopping: not sent")
            )
            self._wakeup.set()
            return
        now = self._clock()
        deadline = now + self._options.timeout_ms / 1000 + DEADLINE_GRACE_S
        request_deadline = deadline - DEADLINE_GRACE_S
        slot = self._slot(segment.start_frame)
        if slot is not None and slot - SLOT_GRACE_S < deadline:  # its live slot comes first
            deadline = slot - SLOT_GRACE_S
            request_deadline = deadline - CLIENT_GRACE_S
        self._buffer.add(seq, samples, ready_at=ready_at, deadline=deadline)
        self._wakeup.set()  # the emitter must learn the new deadline
        task = asyncio.create_task(self._dub(seq, samples, request_deadline, heard_before))
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _heard_before(self, span: Span) -> npt.NDArray[np.int16] | None:
        """The audio to send with `span` as context, and remember `span`'s own tail.

        The context is the tail of the speech segment a hard cut ended right where `span`
        begins: the word the cut split is in it.
        """
        tail, self._cut_tail = self._cut_tail, None
        segment = span.segment
        frames = self._fmt.frames_for_ms(self._options.context_ms)
        before_cut = segment.samples[-self._fmt.frames_for_ms(CUT_IN_SPEECH_MS) :]
        if span.speech and span.hard_cut and frames and is_speech(before_cut):
            self._cut_tail = (segment.end_frame, segment.samples[-frames:])
        if tail is None or not span.speech or tail[0] != segment.start_frame:
            return None
        return tail[1]

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _dub(
        self,
        seq: int,
        samples: npt.NDArray[np.int16],
        deadline: float,
        heard_before: npt.NDArray[np.int16] | None,
    ) -> None:
        context = None if self._context is None else self._context[1]
        try:
            result = await dub(
                self._client,
                seq,
                samples,
                self._fmt,
                deadline=deadline,
                previous_text=context,
                context_audio=heard_before,
            )
            if result.transcript and (self._context is None or self._context[0] < seq):
                self._context = (seq, result.transcript)
        except Exception as exc:  # a bug must not lose the segment: fall back and say so
            logger.exception("segment %d: unexpected error; writing original audio", seq)
            result = DubResult.fallback(FallbackReason.INTERNAL, repr(exc))
        self._buffer.resolve(seq, result)
        self._wakeup.set()

    def _write(self, emitted: Emitted) -> None:
        self._sink.write(emitted.samples if self._mix is None else self._mix(emitted))
        self._stats.record(emitted)
        start_frame = self._written_frames
        self._written_frames += int(emitted.samples.shape[0])
        if self._on_written is not None:
            self._on_written(emitted, start_frame)
        if self._segment_log is not None or self._options.max_delay_ms is not None:
            timing = Timing(
                started=self._started,
                input_origin_s=0.0 if self._origin is None else self._origin - self._started,
                delay_s=None
                if self._options.max_delay_ms is None
                else self._options.max_delay_ms / 1000,
            )
            record, start_ms, end_ms = segment_record(emitted, start_frame, self._fmt, timing)
            self._stats.record_offsets(start_ms, end_ms)
            if self._segment_log is not None:
                self._segment_log(record)
        result = emitted.result
        if result.reason is not None:
            logger.info(
                "segment %d: original audio (%s: %s)",
                emitted.sequence_number,
                result.reason.value,
                result.detail,
                extra={"sequence_number": emitted.sequence_number, "reason": result.reason.value},
            )
        self._progress.update(
            self._fmt.duration_s(int(emitted.samples.shape[0])),
            self._stats,
            self._clock() - self._started,
        )

    def _on_emitter_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("writing the output failed: %s", task.exception())
            self.request_stop()

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["InputStats", "PipelineOptions", "PipelineOutcome", "StreamDubber"]
