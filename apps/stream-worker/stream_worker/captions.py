"""Captions: the translation (and optionally the transcript) as WebVTT, timed to the output.

Each dubbed segment with a translation gives one cue. Its times are where the dub speaks in
the OUTPUT timeline: the dubbed track starts at the source's first audio sample
(`PacketQueue.audio_start_s` for media, 0 for WAV and raw PCM) and every segment, dubbed or
not, has exactly its input's length, so a segment written at output frame ``n`` plays at
``audio_start + n / rate``; within it, the cue covers the dub's voiced span (the first and
the last 10 ms step above -45 dBFS, the level `stream_worker.latency` locates speech with),
so a caption is not on screen through the silence a dub is padded with. A source cue is
timed the same way on the original audio (where the source speech is in the timeline).

Fallback and non-speech segments give no cue: the original audio plays, there is nothing
translated to show.

The file writer is a few lines (`WebVttFile`): WebVTT is a header and blocks of
``start --> end`` plus text, and a live output needs each cue on disk as soon as its
segment is written, which the WebVTT libraries (webvtt-py writes a whole caption list at
once) do not do. A cue is one ``write`` + ``flush``: after every cue the file is valid
WebVTT and a SIGKILL loses at most the cue being written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TextIO

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat
from stream_worker.latency import voiced_span
from stream_worker.reorder import Emitted

CaptionKind = Literal["translation", "source"]

HEADER = "WEBVTT\n\n"


@dataclass(frozen=True)
class Cue:
    """One caption on the output timeline.

    Attributes:
        start_s: When it appears (seconds on the output's timeline).
        end_s: When it goes (after `start_s`).
        text: What it says (one line, plain text).
    """

    start_s: float
    end_s: float
    text: str


def timestamp(seconds: float) -> str:
    """A WebVTT timestamp, ``HH:MM:SS.mmm`` (hours grow past 99 as WebVTT allows).

    Example:
        >>> timestamp(3725.5), timestamp(0.0004)
        ('01:02:05.500', '00:00:00.000')
    """
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def clean_text(text: str) -> str:
    """The text of a cue: one line, whitespace collapsed (a blank line would end the cue)."""
    return " ".join(text.split())


def escape(text: str) -> str:
    """Cue text as WebVTT markup: ``&``, ``<`` and ``>`` escaped (WebVTT's own rule).

    Example:
        >>> escape("A&B <i> --> C")
        'A&amp;B &lt;i&gt; --&gt; C'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_cue(cue: Cue) -> str:
    """One WebVTT cue block, blank line included (the text on one line: it cannot end the cue)."""
    text = escape(clean_text(cue.text))
    return f"{timestamp(cue.start_s)} --> {timestamp(cue.end_s)}\n{text}\n\n"


class WebVttFile:
    """A WebVTT file written cue by cue, valid after every cue.

    Args:
        path: Where to write (created or truncated).
        option: The option that named it, for error messages.

    Raises:
        OSError: if the file cannot be created (with the path in the message).
    """

    def __init__(self, path: str, option: str) -> None:
        self.path = path
        self.cues = 0
        try:
            self._file: TextIO = open(path, "w", encoding="utf-8")  # closed by close()
        except OSError as exc:
            raise OSError(f"{option}: cannot write {path}: {exc.strerror or exc}") from None
        self._write(HEADER)

    def _write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()  # in the kernel's hands: a SIGKILL of the worker cannot lose it

    def add(self, cue: Cue) -> None:
        """Append one cue and flush it."""
        self._write(format_cue(cue))
        self.cues += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()


class CueTrack(Protocol):
    """A sink that can carry cues as a subtitle track (`stream_worker.mux.MediaSink`)."""

    def write_cue(self, kind: CaptionKind, cue: Cue) -> None:
        """Mux ``cue`` into the subtitle track of ``kind`` (ignored if there is none)."""


def segment_cues(
    emitted: Emitted, start_frame: int, fmt: AudioFormat, origin_s: float
) -> dict[CaptionKind, Cue]:
    """The cues of one written segment: its translation and its transcript, when it has them.

    Args:
        emitted: The segment as written.
        start_frame: Where it starts in the output, in frames of `fmt`.
        fmt: The format the pipeline writes.
        origin_s: Where the output's audio starts on its timeline.
    """
    result = emitted.result
    if result.audio is None:  # the original plays: nothing was translated
        return {}
    at = origin_s + fmt.duration_s(start_frame)
    length = fmt.duration_s(int(emitted.samples.shape[0]))
    cues: dict[CaptionKind, Cue] = {}
    sources: tuple[tuple[CaptionKind, str | None, npt.NDArray[np.int16] | None], ...] = (
        ("translation", result.translation, emitted.samples),
        ("source", result.transcript, emitted.original),
    )
    for kind, text, audio in sources:
        line = clean_text(text or "")
        if not line:
            continue
        span = voiced_span(audio, fmt) if audio is not None else None
        start, end = span if span is not None else (0.0, length)
        cues[kind] = Cue(at + start, at + end, line)
    return cues


class Captioner:
    """Writes each segment's cues to the caption files and to the output's subtitle tracks.

    Args:
        fmt: The format the pipeline writes.
        files: The WebVTT file of each kind asked for.
        track: The output, when it carries subtitle tracks.
        origin_s: Where the output's audio starts on its timeline (asked at each segment:
            a media input learns it when its first audio packet is read).
    """

    def __init__(
        self,
        fmt: AudioFormat,
        files: dict[CaptionKind, WebVttFile],
        track: CueTrack | None = None,
        origin_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._fmt = fmt
        self._files = files
        self._track = track
        self._origin_s = origin_s

    def written(self, emitted: Emitted, start_frame: int) -> None:
        """Caption one segment, just written at output frame ``start_frame``."""
        origin = self._origin_s()
        origin = origin if math.isfinite(origin) else 0.0
        cues = segment_cues(emitted, start_frame, self._fmt, origin)
        for kind, file in self._files.items():
            cue = cues.get(kind)
            if cue is not None:
                file.add(cue)
            if self._track is None:
                continue
            if cue is None:  # nothing to show here: the track learns it, it is never sparse
                at = origin + self._fmt.duration_s(start_frame)
                cue = Cue(at, at + self._fmt.duration_s(int(emitted.samples.shape[0])), "")
            self._track.write_cue(kind, cue)
