"""Many streams in one process: ``stream-worker --streams FILE``.

The streams file is TOML: an optional ``[defaults]`` table and one ``[[stream]]`` table per
stream, each with ``id``, ``input``, ``output``, ``source_lang``, ``target_lang`` and any other
per-stream option of the single-stream command line (same names, underscores)::

    [defaults]
    sts_url = "http://sts-service:8000"

    [[stream]]
    id = "news-en-es"
    input = "udp://239.0.0.1:5000"
    output = "udp://cdn.example:9000"
    source_lang = "en"
    target_lang = "es"

Each entry is validated by `WorkerSettings`, the model of the single-stream command line, over
the options given on the command line next to ``--streams`` and the ``WORKER_*`` environment
(precedence: entry, ``[defaults]``, command line, environment). Process-wide options (logging,
metrics port) are taken from the command line and environment only.

Every stream is an independent asyncio task on one event loop; the streams share one
connection pool per sts-service. Each stream's blocking work runs off the loop: its input is
read on its own thread (as in single-stream mode) and its output is written on its own thread
(`ThreadedSink`), so an input that dies, a source that drops, an output that blocks or a bug in
one stream never stalls another. A stream that ends prints its summary line and the others go
on; the process ends when every stream has ended. SIGHUP re-reads the file: new entries start,
removed ones stop cleanly (their outputs are finalised), changed ones restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from shared_utils import CircuitBreaker, SettingsError, configure_logging, load_settings
from stream_worker.client import StsClient, http_pool
from stream_worker.config import WorkerSettings
from stream_worker.endpoints import STDIO, EndpointError, Input, check_output, open_input, open_sink
from stream_worker.main import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    _check_sts,
    _is_live,
    _option_errors,
    _segments_file,
    build_parser,
    build_summary,
    make_cutter,
    pipeline_options,
)
from stream_worker.metrics import StreamsCollector, serve_collector
from stream_worker.pipeline import StreamDubber
from stream_worker.signals import STOP_SIGNALS
from stream_worker.sink import Sink
from stream_worker.summary import RunStats
from stream_worker.vad import BatchedVad, VadBatcher

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

logger = logging.getLogger("stream_worker.streams")
T = TypeVar("T")

#: The option that turns on many-streams mode.
STREAMS_FLAG = "--streams"
#: Options of the whole process: given on the command line or in the environment, refused in
#: a stream's entry (one log, one metrics port, no progress bar for many streams).
PROCESS_KEYS = frozenset({"log_level", "log_format", "metrics_port", "metrics_host", "progress"})
#: Where a stream writes: one stream's each, never in [defaults] or beside --streams.
PER_STREAM_PATHS = ("output", "summary_json", "segments_json")
#: A stream's id is its ``id`` key (the single-stream ``--stream-id``).
ID_KEY = "id"
#: Output a stream may queue for its destination, in seconds of audio; past it the stream's
#: input waits (backpressure, as with a single stream).
OUTPUT_BACKLOG_S = 10.0
#: A destination that takes nothing this long while audio waits is blocked: its stream ends
#: (the others go on).
OUTPUT_STALL_S = 10.0
#: How long an ended stream's output may take to finish writing what it queued.
OUTPUT_CLOSE_S = 30.0
#: Streams that share one connection pool. httpcore hands each request to a connection by
#: scanning every connection of its pool: with 100 streams on one pool (~300 connections)
#: that took ~6.7 ms of the event loop per request, measured with cProfile, a whole segment
#: end's burst of 100 requests ~0.7 s. Pools of 10 streams keep the scan short and still
#: share connections, TLS context and keep-alive among streams.
POOL_STREAMS = 10
#: Inputs opened at once (opening a live URL can block for its probe, up to seconds).
OPEN_THREADS = 16

#: The stream a log record belongs to (set in each stream's task).
CURRENT_STREAM: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stream_worker_stream", default=None
)


class StreamsFileError(UsageError):
    """The streams file cannot be read or an entry is invalid (one line, exit 2)."""


class OutputBlockedError(OSError):
    """A stream's output did not take its audio: that stream ends."""


class _StreamFilter(logging.Filter):
    """Adds ``stream_id`` to every record logged from a stream's task."""

    def filter(self, record: logging.LogRecord) -> bool:
        stream_id = CURRENT_STREAM.get()
        if stream_id is not None and not hasattr(record, "stream_id"):
            record.stream_id = stream_id
        return True


# ------------------------------------------------------------------------------ the file


def _check_keys(where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in table:
        if key in PROCESS_KEYS:
            raise StreamsFileError(
                f"{where}: {key!r} is an option of the whole process, not of one stream: give "
                f"it on the command line or as {WorkerSettings.env_var_for(key)}"
            )
        if key == "stream_id":
            raise StreamsFileError(f"{where}: unknown key 'stream_id' (a stream's id is 'id')")
        if key not in allowed:
            raise StreamsFileError(f"{where}: unknown key {key!r}")


def _entry_settings(where: str, values: dict[str, Any], names: Mapping[str, str]) -> WorkerSettings:
    """Validate one stream with the single-stream model; errors name the entry and key."""
    try:
        return WorkerSettings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["loc"]:
                key = names.get(str(error["loc"][0]), str(error["loc"][0]))
                problems.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
            else:
                problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise StreamsFileError(f"{where}: {'; '.join(problems)}") from None


def load_streams(path: str, base: Mapping[str, Any] | None = None) -> dict[str, WorkerSettings]:
    """Read and validate a streams file: each stream's settings, by id, in file order.

    Args:
        path: The TOML file.
        base: Options given on the command line, under every stream's own.

    Raises:
        StreamsFileError: naming the file, the entry and the key at fault.
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise StreamsFileError(f"{path}: cannot read the streams file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StreamsFileError(f"{path}: not valid TOML: {exc}") from None
    fields = frozenset(WorkerSettings.model_fields)
    for key in document:
        if key not in ("defaults", "stream"):
            raise StreamsFileError(
                f"{path}: unknown top-level key {key!r} (a streams file has [defaults] and "
                "[[stream]] tables)"
            )
    defaults = document.get("defaults", {})
    entries = document.get("stream", [])
    if not isinstance(defaults, dict):
        raise StreamsFileError(f"{path}: 'defaults' must be a table ([defaults])")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise StreamsFileError(f"{path}: 'stream' must be an array of tables ([[stream]])")
    if not entries:
        raise StreamsFileError(f"{path}: no [[stream]] entry")
    _check_keys(f"{path}: [defaults]", defaults, fields - {"input", *PER_STREAM_PATHS})
    streams: dict[str, WorkerSettings] = {}
    for index, entry in enumerate(entries, start=1):
        stream_id = entry.get(ID_KEY)
        where = f"{path}: stream {index}" + (f" ({stream_id!r})" if stream_id else "")
        _check_keys(where, entry, fields | {ID_KEY})
        for key in (ID_KEY, "input", "output", "source_lang", "target_lang"):
            if key not in entry:
                raise StreamsFileError(f"{where}: missing key {key!r}")
        for key in ("input", "output"):
            if entry[key] == STDIO:
                raise StreamsFileError(
                    f"{where}: {key}: '-' (stdin/stdout) is for one stream; give a file or URL"
                )
        values = {**(base or {}), **defaults, **entry}
        values["stream_id"] = values.pop(ID_KEY)
        settings = _entry_settings(where, values, {"stream_id": ID_KEY})
        assert settings.stream_id is not None  # "id" is required above
        if settings.stream_id in streams:
            raise StreamsFileError(f"{where}: id {settings.stream_id!r} is given twice")
        for key in PER_STREAM_PATHS:
            value = getattr(settings, key)
            other = next((o for o in streams.values() if value and getattr(o, key) == value), None)
            if other is not None:
                raise StreamsFileError(
                    f"{where}: {key} {value!r} is also stream {other.stream_id!r}'s: two "
                    "streams would write over each other"
                )
        streams[settings.stream_id] = settings
    return streams


def parse_streams_command(argv: Sequence[str]) -> tuple[str, dict[str, Any], WorkerSettings]:
    """The streams file, the options given beside it, and the process's settings.

    Raises:
        UsageError: naming the option (or variable) at fault.
    """
    parser = build_parser()
    parser.add_argument(STREAMS_FLAG, metavar="FILE", dest="streams", required=True)
    args = vars(parser.parse_args(list(argv)))
    path = str(args.pop("streams"))
    given = {key: value for key, value in args.items() if value is not None}
    for key in ("input", "stream_id", *PER_STREAM_PATHS):
        if key in given:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag}: with --streams, each stream's {key} is in the streams file")
    problems = _option_errors(given)
    if problems:
        raise UsageError("; ".join(problems))
    try:
        process = load_settings(WorkerSettings, **given)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    return path, given, process


# ------------------------------------------------------------------------------ one stream


class ThreadedSink:
    """A stream's output, written on its own thread: a stuck destination blocks that stream only.

    Writes are queued in order (nothing is dropped or reordered). The stream's input waits
    (`throttled`) while `backlog_frames` frames are queued, so a destination slower than the
    input (an encoder behind a file read at full speed) slows its own stream down and memory
    stays bounded. A destination that takes nothing for `stall_s` while audio waits is
    blocked (`stalled_s`): the stream is stopped and its next write raises
    `OutputBlockedError`. A write error of the destination is raised by the next write.
    """

    def __init__(self, inner: Sink, backlog_frames: int, name: str) -> None:
        self.inner = inner
        #: Frames the destination took so far.
        self.frames_written = inner.frames_written
        self._backlog_frames = backlog_frames
        self._queued_frames = 0
        self._room = threading.Condition()
        self._queue: queue.SimpleQueue[npt.NDArray[np.int16] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._progress_at = time.monotonic()
        self._closed = threading.Event()
        self._close_requested = False
        self._thread = threading.Thread(target=self._run, name=f"output-{name}", daemon=True)
        self._thread.start()

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Queue `samples` for the destination.

        Raises:
            OSError: the destination failed or is blocked (`fail`).
        """
        if self._error is not None:
            raise OSError(str(self._error))
        with self._room:
            if not self._queued_frames:
                self._progress_at = time.monotonic()
            self._queued_frames += int(samples.shape[0])
        self._queue.put(samples)

    def throttled(self, chunks: Iterable[npt.NDArray[np.int16]]) -> Iterator[npt.NDArray[np.int16]]:
        """`chunks`, each taken only while the destination has room (runs on the reader)."""
        for chunk in chunks:
            with self._room:
                while self._queued_frames > self._backlog_frames and self._error is None:
                    self._room.wait(0.1)
            if self._error is not None:
                return
            yield chunk

    def stalled_s(self) -> float:
        """How long audio has waited without the destination taking any (0 if none waits)."""
        with self._room:
            return time.monotonic() - self._progress_at if self._queued_frames else 0.0

    def fail(self, error: OSError) -> None:
        """Give up on the destination: the next write raises `error`, the input stops."""
        with self._room:
            self._error = error
            self._room.notify_all()

    def close(self) -> None:
        """Ask the thread to finish the output after what is queued (does not wait)."""
        if not self._close_requested:
            self._close_requested = True
            self._queue.put(None)

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait for the output to be finished; False if it did not finish in time."""
        self.close()
        return self._closed.wait(timeout_s)

    @property
    def closed(self) -> bool:
        """Whether the destination has been closed (or given up on while closing)."""
        return self._closed.is_set()

    def _run(self) -> None:
        try:
            while True:
                samples = self._queue.get()
                if samples is None:
                    break
                if self._error is None:
                    try:
                        self.inner.write(samples)
                        self.frames_written = self.inner.frames_written
                    except Exception as exc:  # handed to the stream at its next write
                        self.fail(OSError(f"the output failed: {exc}"))
                with self._room:
                    self._queued_frames -= int(samples.shape[0])
                    self._progress_at = time.monotonic()
                    self._room.notify_all()
            self.inner.close()
        except Exception as exc:  # closing failed: the stream reports it
            self.fail(OSError(f"the output failed: {exc}"))
        finally:
            self._closed.set()

    @property
    def error(self) -> BaseException | None:
        """What went wrong with the destination, if anything."""
        return self._error


async def watch_output(sink: ThreadedSink, dubber: StreamDubber, stall_s: float) -> None:
    """Stop the stream whose destination takes nothing for `stall_s` (the others go on)."""
    while True:
        await asyncio.sleep(min(1.0, stall_s / 4))
        stalled = sink.stalled_s()
        if stalled > stall_s:
            sink.fail(
                OutputBlockedError(f"the output is blocked: nothing taken for {stalled:.1f} s")
            )
            dubber.request_stop()
            return


def _close_opened(opening: asyncio.Future[Input]) -> None:
    """Close an input whose stream was stopped while it was being opened."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


OpenInput = Callable[[WorkerSettings], Input]
OpenSink = Callable[[WorkerSettings, Input], Sink]


@dataclass
class StreamRun:
    """One run of one stream (a restart is a new run)."""

    settings: WorkerSettings
    task: asyncio.Task[int] | None = None
    dubber: StreamDubber | None = None
    stop_requested: bool = False
    exit_code: int | None = None

    @property
    def stream_id(self) -> str:
        """The stream's id."""
        assert self.settings.stream_id is not None
        return self.settings.stream_id

    @property
    def stats(self) -> RunStats | None:
        """Its statistics so far (None before its pipeline starts)."""
        return None if self.dubber is None else self.dubber.stats

    def stop(self) -> None:
        """Stop it: a running stream finalises its output; one still starting is abandoned."""
        self.stop_requested = True
        if self.dubber is not None:
            self.dubber.request_stop()
        elif self.task is not None:
            self.task.cancel()


@dataclass
class Options:
    """How the supervisor runs streams (tests replace the endpoints and the transport)."""

    open_input: OpenInput = open_input
    open_sink: OpenSink = open_sink
    transport: httpx.AsyncBaseTransport | None = None
    output_backlog_s: float = OUTPUT_BACKLOG_S
    output_stall_s: float = OUTPUT_STALL_S
    output_close_s: float = OUTPUT_CLOSE_S
    #: Streams that start together (the process starting, a reload) start spread over one
    #: longest segment, evenly; False starts them all at once.
    spread_starts: bool = True


def _state(stream_id: str, state: str, detail: str = "") -> None:
    """The one log line of a stream's state change."""
    logger.info(
        "stream %s: %s%s",
        stream_id,
        state,
        f" ({detail})" if detail else "",
        extra={"stream_id": stream_id, "state": state},
    )


class Supervisor:
    """Runs every stream of a streams file; SIGHUP re-reads it.

    Args:
        path: The streams file.
        base: Options given beside ``--streams`` (under every entry's own).
        stderr: Where each stream's summary line goes.
        options: Endpoints and limits (tests replace them).
    """

    def __init__(
        self,
        path: str,
        base: Mapping[str, Any],
        stderr: TextIO,
        options: Options | None = None,
    ) -> None:
        self.path = path
        self.base = dict(base)
        self.stderr = stderr
        self.options = options or Options()
        self.runs: dict[str, StreamRun] = {}
        #: Results of every run that ended, in order: (stream id, exit code).
        self.ended: list[tuple[str, int]] = []
        self._pending: dict[str, WorkerSettings] = {}
        # Ids removed from the file by a reload: given again later, they start again.
        self._removed: set[str] = set()
        self._pools: dict[tuple[str, str | None, int], httpx.AsyncClient] = {}
        self._clients_made = 0
        self._checks: dict[tuple[str, str, str], asyncio.Task[str]] = {}
        self._changed = asyncio.Event()
        self._stopping = False
        self._openers = concurrent.futures.ThreadPoolExecutor(
            OPEN_THREADS, thread_name_prefix="open-stream"
        )
        self._vad_batcher: asyncio.Future[VadBatcher] | None = None  # the first VAD stream's

    # ------------------------------------------------------------- the set of streams

    def stats(self) -> list[tuple[str, RunStats]]:
        """(id, stats) of every stream that is running or has run (for the metrics)."""
        return [(stream_id, run.stats) for stream_id, run in list(self.runs.items()) if run.stats]

    async def run(self, streams: Mapping[str, WorkerSettings]) -> int:
        """Run `streams` until each has ended (restarts and additions included).

        Returns:
            0 when every run of every stream ended with exit 0, otherwise 1.
        """
        self._start_together(list(streams.items()))
        try:
            while True:
                self._changed.clear()
                ready = []
                for stream_id, settings in list(self._pending.items()):
                    previous = self.runs.get(stream_id)
                    if previous is None or previous.task is None or previous.task.done():
                        del self._pending[stream_id]
                        if not self._stopping:
                            ready.append((stream_id, settings))
                self._start_together(ready)
                running = [r for r in self.runs.values() if r.task and not r.task.done()]
                if not running and not self._pending:
                    break
                await self._changed.wait()
        finally:
            for pool in self._pools.values():
                await pool.aclose()
            self._openers.shutdown(wait=False, cancel_futures=True)
            batcher = self._vad_batcher
            if batcher is not None and batcher.done() and not batcher.cancelled():
                if batcher.exception() is None:
                    batcher.result().close()
        failed = [stream_id for stream_id, code in self.ended if code != EXIT_OK]
        return EXIT_FAILURE if failed else EXIT_OK

    def stop_all(self) -> None:
        """SIGINT/SIGTERM: stop every stream (outputs finalised) and start none."""
        self._stopping = True
        self._pending.clear()
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                _state(run.stream_id, "stopping", "stop signal")
                run.stop()
        self._changed.set()

    def reload(self) -> None:
        """SIGHUP: re-read the file; start new streams, stop removed ones, restart changed."""
        if self._stopping:
            return
        try:
            wanted = load_streams(self.path, self.base)
        except StreamsFileError as exc:
            logger.error("streams file not reloaded, the streams go on as they are: %s", exc)
            return
        self._checks.clear()  # the service may have changed too: check it again
        for stream_id, run in list(self.runs.items()):
            active = run.task is not None and not run.task.done()
            if stream_id not in wanted:
                self._pending.pop(stream_id, None)
                self._removed.add(stream_id)
                if active:
                    _state(stream_id, "stopping", "removed from the streams file")
                    run.stop()
                continue
            if stream_id in self._removed:  # removed before, listed again: a new stream
                self._removed.discard(stream_id)
                self._pending[stream_id] = wanted[stream_id]
            elif wanted[stream_id] != run.settings:
                changed = sorted(
                    key
                    for key in WorkerSettings.model_fields
                    if getattr(wanted[stream_id], key) != getattr(run.settings, key)
                )
                _state(stream_id, "restarting", f"changed: {', '.join(changed)}")
                if active:
                    run.stop()
                self._pending[stream_id] = wanted[stream_id]
        for stream_id, settings in wanted.items():
            if stream_id not in self.runs:
                self._pending[stream_id] = settings
        self._changed.set()

    def _start_together(self, streams: Sequence[tuple[str, WorkerSettings]]) -> None:
        """Start `streams`, the i-th of N after i/N of its longest segment.

        Streams started in the same instant cut their segments in the same instants as long
        as their audio is alike (fixed cuts always; pause cuts on the same feed): every
        segment of every stream would reach the service, and come back to this one loop, in
        one burst (at 100 streams, part of each burst missed its deadline). Spread over one
        segment, the requests come evenly; the last stream's output starts one segment later.
        """
        for index, (stream_id, settings) in enumerate(streams):
            delay_s = 0.0
            if self.options.spread_starts:
                delay_s = index * settings.longest_segment_ms / 1000 / len(streams)
            self._start(stream_id, settings, delay_s)

    def _start(self, stream_id: str, settings: WorkerSettings, delay_s: float = 0.0) -> None:
        run = StreamRun(settings)
        self.runs[stream_id] = run
        context = contextvars.copy_context()
        context.run(CURRENT_STREAM.set, stream_id)
        # Created inside the context, the task copies it: the stream's id, on Python 3.10 too
        # (create_task's own context= argument is 3.11+).
        loop = asyncio.get_running_loop()
        run.task = context.run(loop.create_task, self._run_stream(run, delay_s))
        run.task.add_done_callback(lambda _: self._changed.set())

    # ------------------------------------------------------------- one stream

    async def _run_stream(self, run: StreamRun, delay_s: float = 0.0) -> int:
        stream_id = run.stream_id
        _state(stream_id, "starting", f"{run.settings.input} -> {run.settings.output}")
        summary: dict[str, Any] | None = None
        error: str | None = None
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            summary = await self._dub(run)
            input_error = summary.get("input_error")
            code = EXIT_FAILURE if input_error else EXIT_OK
            error = input_error
        except asyncio.CancelledError:
            code, error = EXIT_OK, "stopped before it started"
        except (UsageError, EndpointError) as exc:
            code, error = EXIT_USAGE, " ".join(str(exc).split())
        except OSError as exc:
            code, error = EXIT_FAILURE, f"writing the output failed: {exc}"
        except Exception as exc:  # a bug in one stream must not end the others
            logger.exception("stream %s: unexpected error", stream_id)
            code, error = EXIT_FAILURE, f"internal error: {exc!r}"
        run.exit_code = code
        self.ended.append((stream_id, code))
        self._write_summary(run, summary, code, error)
        if error is None:
            _state(stream_id, "ended", "stopped" if run.stop_requested else "input complete")
        else:
            _state(stream_id, "ended" if code == EXIT_OK else "failed", f"exit {code}: {error}")
        return code

    async def _in_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._openers, work)

    async def _dub(self, run: StreamRun) -> dict[str, Any]:
        settings = run.settings
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(self._openers, self.options.open_input, settings)
        try:
            source: Input = await asyncio.shield(opening)
        except asyncio.CancelledError:  # abandoned: close it whenever its open finishes
            opening.add_done_callback(_close_opened)
            raise
        try:
            await self._in_thread(lambda: check_output(settings))
            with _segments_file(settings.segments_json) as segment_log:
                client = self._client(settings, source)
                async with client:
                    await self._check_service(client, settings)
                    inner: Sink = await self._in_thread(
                        lambda: self.options.open_sink(settings, source)
                    )
                    backlog = source.fmt.frames_for_ms(round(self.options.output_backlog_s * 1000))
                    sink = ThreadedSink(inner, backlog, run.stream_id)
                    live = _is_live(source)
                    chunks = sink.throttled(source.chunks)
                    detector = None
                    if settings.segmenter == "vad":  # scored off the loop, batched
                        detector = BatchedVad(await self._batcher(), source.fmt.sample_rate)
                        chunks = detector.scored(chunks)
                    cutter = make_cutter(settings, source, detector)
                    dubber = StreamDubber(
                        client,
                        chunks,
                        source.fmt,
                        sink,
                        pipeline_options(settings, live),
                        total_s=source.total_s,
                        cutter=cutter,
                        segment_log=segment_log,
                    )
                    run.dubber = dubber
                    if run.stop_requested:
                        dubber.request_stop()
                    _state(run.stream_id, "running", "live" if live else "file")
                    watch = asyncio.ensure_future(
                        watch_output(sink, dubber, self.options.output_stall_s)
                    )
                    try:
                        outcome = await dubber.run()
                    finally:
                        watch.cancel()
                        await self._finish(sink)
                    if sink.error is not None:
                        raise OSError(str(sink.error))
            return build_summary(settings, source, outcome, inner, cpu_s=0.0)
        finally:
            source.close()

    async def _batcher(self) -> VadBatcher:
        """The process's VAD batcher (loading the model, ~0.3 s, on a thread the first time)."""
        if self._vad_batcher is None:  # one for all: the streams that start together wait
            self._vad_batcher = asyncio.ensure_future(self._in_thread(VadBatcher))
        return await asyncio.shield(self._vad_batcher)

    async def _finish(self, sink: ThreadedSink) -> None:
        """Wait while the output writes what is queued and closes, as long as it progresses.

        Raises:
            OutputBlockedError: it took nothing for the stall time, or its close hangs.
        """
        sink.close()
        started = time.monotonic()
        while not sink.closed:
            await asyncio.sleep(0.05)
            stalled = sink.stalled_s()
            closing_s = time.monotonic() - started
            if stalled > self.options.output_stall_s or (
                not stalled and closing_s > self.options.output_close_s
            ):
                sink.fail(OutputBlockedError("the output is blocked"))
                raise OutputBlockedError(
                    f"the output is blocked: it did not finish ({closing_s:.1f} s after the "
                    "input ended)"
                )

    def _client(self, settings: WorkerSettings, source: Input) -> StsClient:
        token = settings.sts_token.get_secret_value() if settings.sts_token else None
        shard = self._clients_made // POOL_STREAMS
        self._clients_made += 1
        key = (settings.sts_url, token, shard)
        if key not in self._pools:  # unlimited: each stream bounds its own requests
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            self._pools[key] = http_pool(settings.sts_url, token, limits, self.options.transport)
        return StsClient(
            settings.sts_url,
            source.fmt,
            source_lang=settings.source_lang,
            target_lang=settings.target_lang,
            timeout_ms=settings.request_timeout_ms,
            breaker=CircuitBreaker(
                failure_threshold=settings.breaker_failures,
                reset_timeout_s=settings.breaker_reset_ms / 1000,
            ),
            stream_id=settings.stream_id,
            http=self._pools[key],
        )

    async def _check_service(self, client: StsClient, settings: WorkerSettings) -> None:
        """The health and language-pair check, once per service and pair (not per stream)."""
        key = (settings.sts_url, settings.source_lang, settings.target_lang)
        check = self._checks.get(key)
        if check is None:

            async def first() -> str:
                await _check_sts(client, settings.require_sts)
                return client.service_contract

            check = asyncio.ensure_future(first())
            self._checks[key] = check
        try:
            client.service_contract = await asyncio.shield(check)
        except UsageError:
            if settings.require_sts:
                raise
            # The first stream of this pair required the service, this one does not: it
            # falls back until the service answers, as a single stream would.

    def _write_summary(
        self, run: StreamRun, summary: dict[str, Any] | None, code: int, error: str | None
    ) -> None:
        head: dict[str, Any] = {"event": "summary", "stream_id": run.stream_id}
        body = {key: value for key, value in (summary or {}).items() if key != "event"}
        # One process's CPU time is shared by its streams: no per-stream figure.
        body.pop("cpu_s", None)
        line = {**head, "exit_code": code, "error": error, **body}
        self.stderr.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.stderr.flush()
        path = run.settings.summary_json
        if path:
            try:
                with open(path, "w", encoding="utf-8") as file:
                    file.write(json.dumps(line, indent=2) + "\n")
            except OSError as exc:
                logger.error("stream %s: cannot write %s: %s", run.stream_id, path, exc)


# ------------------------------------------------------------------------------ the process


async def _serve(
    supervisor: Supervisor, streams: Mapping[str, WorkerSettings], process: WorkerSettings
) -> int:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    handlers: list[tuple[int, Callable[[], None]]] = [
        *((signum, supervisor.stop_all) for signum in STOP_SIGNALS.handled),
        (signal.SIGHUP, supervisor.reload),
    ]
    for signum, handler in handlers:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
    stop_metrics: Callable[[], None] | None = None
    try:
        if process.metrics_port is not None:
            try:
                stop_metrics = serve_collector(
                    process.metrics_port, process.metrics_host, StreamsCollector(supervisor.stats)
                )
            except OSError as exc:
                raise UsageError(
                    f"--metrics-port: cannot listen on {process.metrics_host}:"
                    f"{process.metrics_port}: {exc}"
                ) from exc
        task = asyncio.ensure_future(supervisor.run(streams))
        if STOP_SIGNALS.received is not None:  # it came during the imports
            supervisor.stop_all()
        return await task
    finally:
        if stop_metrics is not None:
            stop_metrics()
        for signum in installed:
            loop.remove_signal_handler(signum)
        STOP_SIGNALS.take_back()


def main(argv: Sequence[str], stderr: TextIO | None = None, options: Options | None = None) -> int:
    """``stream-worker --streams FILE [options for every stream]``; returns the exit code.

    Exit codes: 2 when the command line or the streams file is invalid (nothing starts);
    otherwise 0 when every stream ended well, 1 when any of them failed.
    """
    stderr = stderr or sys.stderr
    # SIGHUP ends a process by default: take it over before anything else (it re-reads the
    # file once the streams run; until then it is noted and ignored).
    previous_hup = signal.getsignal(signal.SIGHUP)
    with contextlib.suppress(ValueError):  # not the main thread (tests): no signals
        signal.signal(signal.SIGHUP, lambda signum, frame: None)
    try:
        path, given, process = parse_streams_command(argv)
        configure_logging(PROG, process.log_level, process.log_format, stream=stderr)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
        for handler in logging.getLogger().handlers:
            handler.addFilter(_StreamFilter())
        streams = load_streams(path, given)
        logger.info("%d stream(s) from %s", len(streams), path)
        started = time.monotonic()
        code = asyncio.run(_serve(Supervisor(path, given, stderr, options), streams, process))
        logger.info("every stream has ended after %.1f s", time.monotonic() - started)
        return code
    except UsageError as exc:
        stderr.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return EXIT_USAGE
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGHUP, previous_hup)


def wants_streams(argv: Iterable[str]) -> bool:
    """Whether the command line asks for many-streams mode."""
    return any(arg == STREAMS_FLAG or arg.startswith(STREAMS_FLAG + "=") for arg in argv)
