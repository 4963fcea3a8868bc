"""Choosing the input reader and the output sink from the settings.

Input: ``-`` is raw PCM on stdin (sent to sts-service as it is); anything else is opened once
by FFmpeg (:class:`~stream_worker.demux.MediaSource`), whose audio is resampled to the
service's format. Output: ``-`` is raw PCM at the service's format unless ``--output-format``
names a container; ``.wav`` (or ``--output-format wav``) is audio only, at the source's
format; any other name or URL is a container with the input's video and the dubbed audio.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from shared_audio import (
    SUPPORTED_CHANNELS,
    SUPPORTED_SAMPLE_RATES,
    AudioFormat,
    WavError,
    iter_wav_chunks,
)
from stream_worker.captions import CaptionKind
from stream_worker.config import WorkerSettings
from stream_worker.demux import MediaError, MediaSource, is_live_url
from stream_worker.mux import MediaSink, MuxError, output_format
from stream_worker.sink import RawSink, Sink, WavSink
from stream_worker.source import BULK_CHUNK_MS, REALTIME_CHUNK_MS, InputStats, RawPcmReader, paced

logger = logging.getLogger(__name__)

STDIO = "-"


class EndpointError(ValueError):
    """The input or output cannot be used (one line for stderr, exit 2)."""


@dataclass
class Input:
    """An opened input.

    Attributes:
        chunks: ``int16`` chunks in the service's format.
        fmt: That format.
        stats: Frames read (and bytes dropped).
        total_s: Declared duration (for the progress bar's ETA), None if live or unknown.
        close: Stops and closes the input.
        media: The FFmpeg source, None for raw stdin.
    """

    chunks: Iterable[npt.NDArray[np.int16]]
    fmt: AudioFormat
    stats: InputStats
    total_s: float | None
    close: Callable[[], None] = lambda: None
    media: MediaSource | None = field(default=None)


def is_audio_only(settings: WorkerSettings) -> bool:
    """Whether the output is a WAV file or raw PCM (no container, no video)."""
    output = settings.output or STDIO
    fmt = output_format(output, settings.output_format)
    if fmt is None:
        return output == STDIO or output.lower().endswith((".wav", ".wave"))
    return fmt == "wav"


def open_input(settings: WorkerSettings) -> Input:
    """Open the input named by the settings.

    Raises:
        EndpointError: it cannot be opened, has no audio, or no such track.
    """
    path = settings.input
    assert path is not None  # checked by parse_settings
    if path == STDIO:
        stdin = _unbuffered_stdin()
        fmt = AudioFormat(settings.sample_rate, settings.channels)
        raw = RawPcmReader(stdin, fmt, chunk_ms=REALTIME_CHUNK_MS * 5)
        if settings.realtime:
            logger.info("--realtime has no effect on stdin: a pipe is paced by its source")
        return Input(raw, fmt, raw.stats, None)
    live = is_live_url(path) or settings.realtime
    audio_only = is_audio_only(settings)
    try:
        source = MediaSource(
            path,
            AudioFormat(settings.sts_sample_rate, settings.sts_channels),
            audio_track=settings.audio_track,
            keep_video=not audio_only,
            keep_original_audio=settings.keep_original_audio and not audio_only,
            live=live,
            read_timeout_s=settings.read_timeout_ms / 1000,
            chunk_ms=REALTIME_CHUNK_MS if live else BULK_CHUNK_MS,
        )
    except MediaError as exc:
        raise EndpointError(f"input {_wav_problem(path) or exc}") from None
    chunks: Iterable[npt.NDArray[np.int16]] = source
    if settings.realtime and not is_live_url(path):
        chunks = paced(iter(source), source.format)
    return Input(chunks, source.format, source.stats, source.duration_s, source.close, source)


class InputInterruptedError(Exception):
    """A stop signal came while the input was still being opened (nothing was written)."""


#: How often a pending open looks for a stop signal, and how long it may still take after.
OPEN_POLL_S = 0.05
OPEN_STOP_GRACE_S = 1.0


def open_input_interruptibly(settings: WorkerSettings, stopped: Callable[[], bool]) -> Input:
    """`open_input` on a helper thread, abandoned as soon as ``stopped()`` turns true.

    Opening can block for as long as the source wants: a FIFO without a writer blocks in
    open(2) (no signal makes FFmpeg give up), a silent udp:// waits for its first packet.
    The helper thread is a daemon: an abandoned open dies with the process.

    Raises:
        EndpointError: as `open_input`.
        InputInterruptedError: ``stopped()`` came first.
    """
    result: list[Input] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(open_input(settings))
        except BaseException as exc:  # handed to the caller's thread, raised there
            failure.append(exc)

    thread = threading.Thread(target=run, name="open-input", daemon=True)
    thread.start()
    stop_seen: float | None = None
    while thread.is_alive():
        if stop_seen is None and stopped():
            stop_seen = time.monotonic()
        # An open that finishes soon after the signal still runs, to an empty valid output
        # (the promise of a signal during start-up); only an open that stays blocked is
        # abandoned.
        if stop_seen is not None and time.monotonic() - stop_seen > OPEN_STOP_GRACE_S:
            raise InputInterruptedError(f"stopped while opening the input {settings.input}")
        thread.join(OPEN_POLL_S)
    if failure:
        raise failure[0]
    return result[0]


def _wav_problem(path: str) -> str | None:
    """What shared-audio's WAV reader finds wrong with a WAV file FFmpeg could not open.

    FFmpeg only says "Invalid data" when a chunk's size does not fit the file; the WAV reader
    names the chunk and where it goes wrong. None when the file is not a RIFF/WAVE file, or
    the reader finds nothing wrong (then FFmpeg's message stands).
    """
    try:
        with open(path, "rb") as file:
            if file.read(12)[8:] != b"WAVE":
                return None
            file.seek(0)
            iter_wav_chunks(file, 1)  # reads and checks the header and the chunks before data
    except WavError as exc:
        return str(exc)
    except OSError:  # a URL, or unreadable: FFmpeg's message says why
        return None
    return None


def _unbuffered_stdin() -> BinaryIO:
    """Standard input for the reader thread, without the interpreter's buffered wrapper.

    The reader thread is a daemon that may sit in a blocking read when the worker exits after
    a signal. Reading through ``sys.stdin.buffer`` it would hold that object's lock, and the
    interpreter, flushing the standard streams at exit, aborts with "_enter_buffered_busy"
    (exit 134). A private unbuffered file on a duplicate of the descriptor has no such lock.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an in-memory stream (tests)
        return sys.stdin.buffer
    return os.fdopen(os.dup(fd), "rb", buffering=0)


#: FFmpeg protocols that wrap another URL (``async:cache:file:x.mp4`` is still x.mp4).
_WRAPPING_PROTOCOLS = ("async", "cache")


def local_path(target: str) -> str | None:
    """The local file ``target`` names, in any form FFmpeg accepts, or None for a URL/stdio.

    ``x.mp4``, ``file:x.mp4``, ``file:///abs/x.mp4`` and ``async:file:x.mp4`` all name
    ``x.mp4``: every form must be compared, or an output can overwrite its own input.
    """
    rest = target
    while True:
        scheme, sep, tail = rest.partition(":")
        name = scheme.lower()
        if sep and name in _WRAPPING_PROTOCOLS:
            rest = tail
            continue
        if sep and name == "file":
            rest = tail[2:] if tail.startswith("//") else tail
            break
        if rest == STDIO or (sep and scheme.isalnum() and len(scheme) > 1) or "://" in rest:
            return None  # another protocol (pipe:, udp://, ...): not a path on this machine
        break
    return os.path.abspath(rest)


def check_output(settings: WorkerSettings) -> None:
    """Fail early on an output path that cannot be written.

    Raises:
        EndpointError: naming the problem.
    """
    output = settings.output
    assert output is not None  # checked by parse_settings
    path = local_path(output)
    if path is None:
        return
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise EndpointError(f"output {output}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise EndpointError(f"output {output}: is a directory")
    source = local_path(settings.input or STDIO)
    if source is not None and _same_file(source, path):
        raise EndpointError(f"output {output} is the input file; choose another path")


def check_caption_paths(settings: WorkerSettings) -> None:
    """Refuse a caption file that is the input, the output or another file the run writes.

    Caption files are created (truncated) before the run: a slip such as ``--captions
    in.mp4`` would destroy the input.

    Raises:
        EndpointError: naming the option and the file it collides with.
    """
    others = {
        "the input": settings.input,
        "the output": settings.output,
        "--segments-json": settings.segments_json,
        "--summary-json": settings.summary_json,
    }
    for option, path in (
        ("--captions", settings.captions),
        ("--captions-source", settings.captions_source),
    ):
        if path is None:
            continue
        for name, other in others.items():
            target = local_path(other) if other is not None else None
            if target is not None and _same_file(path, target):
                raise EndpointError(f"{option} {path} is {name}; choose another path")
        others[option] = path


def _same_file(one: str, other: str) -> bool:
    """Whether two paths name one file (links and hard links included)."""
    try:
        return os.path.samefile(one, other)
    except OSError:  # one does not exist (yet): compare the resolved names
        return os.path.realpath(one) == os.path.realpath(other)


def open_sink(settings: WorkerSettings, source: Input) -> Sink:
    """Open the output for ``source``.

    Raises:
        EndpointError: it cannot be opened or cannot carry the input.
    """
    output = settings.output
    assert output is not None  # checked by parse_settings
    if is_audio_only(settings):
        if output == STDIO:
            return RawSink(sys.stdout.buffer, source.fmt)
        try:
            return WavSink(local_path(output) or output, source.fmt, _wav_format(source))
        except OSError as exc:
            raise EndpointError(f"output {output}: {exc.strerror or exc}") from None
    if source.media is None:
        raise EndpointError(
            f"output {output}: raw PCM from stdin has no container to copy; write a .wav "
            "file or - (raw PCM), or give the stream itself as --input"
        )
    try:
        return MediaSink(
            output,
            source.fmt,
            source.media.info,
            source.media.packets,
            container_format=settings.output_format,
            keep_original_audio=settings.keep_original_audio,
            dub_language=settings.target_lang,
            original_language=settings.source_lang,
            live_delay_s=settings.live_delay_ms / 1000,
            stdout=sys.stdout.buffer,
            flush_every_s=settings.segment_ms / 1000,
            captions=caption_tracks(settings),
        )
    except MuxError as exc:
        raise EndpointError(str(exc)) from None


def caption_tracks(settings: WorkerSettings) -> dict[CaptionKind, str]:
    """The subtitle tracks the output gets: each caption file asked for, in its language."""
    if not settings.caption_tracks:
        return {}
    tracks: dict[CaptionKind, str] = {}
    if settings.captions is not None:
        tracks["translation"] = settings.target_lang
    if settings.captions_source is not None:
        tracks["source"] = settings.source_lang
    return tracks


def _wav_format(source: Input) -> AudioFormat:
    """The WAV output's format: the source's, when a 16-bit WAV can hold it."""
    if source.media is None:
        return source.fmt
    info = source.media.info
    if info.source_rate in SUPPORTED_SAMPLE_RATES and info.source_channels in SUPPORTED_CHANNELS:
        return AudioFormat(info.source_rate, info.source_channels)
    logger.warning(
        "the source's %d Hz / %d channels cannot be written as WAV here; writing %s",
        info.source_rate,
        info.source_channels,
        source.fmt,
    )
    return source.fmt


def media_summary(source: Input, sink: Sink) -> dict[str, Any]:
    """The media part of the run summary (empty for raw PCM in and out)."""
    summary: dict[str, Any] = {}
    if source.media is not None:
        info = source.media.info
        summary["source"] = {
            "audio_codec": info.audio_codec,
            "sample_rate": info.source_rate,
            "channels": info.source_channels,
            "video_streams": len(info.video),
            "live": info.live,
            "discontinuities": source.media.discontinuities,
            "ended": source.media.ended,
        }
    if isinstance(sink, MediaSink):
        summary["output"] = sink.summary()
    elif isinstance(sink, WavSink) and len(sink.paths) > 1:
        summary["output"] = {"files": sink.paths}
    return summary
