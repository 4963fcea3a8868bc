"""Where the stream is cut: at pauses in the speech (the default), or every N ms (`fixed`).

Both cutters turn chunks of any size into contiguous spans (`Span`): a `shared_audio.Segment`
(sequence number, first frame, samples) and whether it holds speech. Concatenated, the spans
are the input, bit for bit, whatever the chunking.

`PauseSegmenter` rules, on the detector's 32 ms windows (a window is speech from a
probability of 0.5 up, and stays speech down to 0.35, the hysteresis Silero's own
segmentation uses):

- audio before the first speech window (minus `onset_pad_ms`, kept for the onset the
  detector hears late) is a non-speech span: it is never sent, it goes out as it came;
- a speech span closes at the end of the first pause of at least `pause_ms` once it holds
  at least `min_segment_ms`; the pause stays in it (the cut falls in silence);
- a span that would grow past `max_segment_ms` is cut at the quietest point of its last
  `lookback_ms` (lowest speech probability, then lowest level, in 10 ms steps): that is
  where a word boundary most likely is, when the speaker has not paused;
- non-speech longer than `max_segment_ms` goes out in pieces of that length, so music or
  room tone is never held back.

So no span is longer than `max_segment_ms`, and only the last span (or one cut short by the
end of the input) is shorter than `min_segment_ms` unless it is non-speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, Segment, Segmenter
from stream_worker.vad import VAD_WINDOW_MS, SpeechDetector, window_frames

#: A window becomes speech at this probability, and stays speech down to RELEASE.
SPEECH_THRESHOLD = 0.5
SPEECH_RELEASE = 0.35
#: Step of the search for the quietest point of a hard cut.
QUIET_STEP_MS = 10


@dataclass(frozen=True)
class Span:
    """A segment of the stream and what the cutter knows of it.

    Attributes:
        segment: Sequence number, first frame and samples.
        speech: Whether it holds speech (only then is it sent to sts-service).
        hard_cut: Whether it ended at the maximum length rather than at a pause.
    """

    segment: Segment
    speech: bool
    hard_cut: bool = False


class Cutter(Protocol):
    """Cuts a stream that arrives in chunks into spans."""

    @property
    def frames_fed(self) -> int:
        """Frames fed so far."""
        ...  # pragma: no cover - a protocol

    def feed(self, chunk: npt.NDArray[np.int16]) -> list[Span]:
        """Take a chunk; return the spans it completes."""
        ...  # pragma: no cover - a protocol

    def flush(self) -> list[Span]:
        """End of the stream: the rest, as spans."""
        ...  # pragma: no cover - a protocol


class FixedCutter:
    """Every `segment_ms`, wherever that falls; every span counts as speech (all are sent)."""

    def __init__(self, fmt: AudioFormat, segment_ms: int) -> None:
        self._segmenter = Segmenter(fmt.frames_for_ms(segment_ms), fmt.channels)

    @property
    def frames_fed(self) -> int:
        """Frames fed so far."""
        return self._segmenter.frames_fed

    def feed(self, chunk: npt.NDArray[np.int16]) -> list[Span]:
        """Take a chunk; return the segments it completes."""
        return [Span(segment, True, hard_cut=True) for segment in self._segmenter.feed(chunk)]

    def flush(self) -> list[Span]:
        """The shorter last segment, if any."""
        last = self._segmenter.flush()
        return [] if last is None else [Span(last, True)]


@dataclass(frozen=True)
class PauseRules:
    """Where `PauseSegmenter` cuts, in milliseconds (see the module docstring).

    Raises:
        ValueError: when the rules contradict each other, naming the values.
    """

    pause_ms: int
    min_segment_ms: int
    max_segment_ms: int
    lookback_ms: int = 600
    onset_pad_ms: int = 96

    def __post_init__(self) -> None:
        if self.pause_ms < VAD_WINDOW_MS:
            raise ValueError(f"pause_ms {self.pause_ms} is below one {VAD_WINDOW_MS} ms window")
        if not 0 < self.min_segment_ms < self.max_segment_ms:
            raise ValueError(
                f"min_segment_ms {self.min_segment_ms} must be above 0 and below "
                f"max_segment_ms {self.max_segment_ms}"
            )
        if self.max_segment_ms < 4 * VAD_WINDOW_MS:
            raise ValueError(f"max_segment_ms {self.max_segment_ms} is below 128 ms")


@dataclass
class _Window:
    start: int
    probability: float
    speech: bool


class PauseSegmenter:
    """Cuts at pauses that a `SpeechDetector` finds (see the module docstring for the rules).

    Args:
        fmt: The stream's format.
        detector: The voice activity detector (it keeps state: one per stream).
        rules: Pause, minimum, maximum and the hard-cut search window.
    """

    def __init__(self, fmt: AudioFormat, detector: SpeechDetector, rules: PauseRules) -> None:
        self._fmt = fmt
        self._detector = detector
        self._hop = window_frames(fmt.sample_rate)
        self._pause = fmt.frames_for_ms(rules.pause_ms)
        self._min = fmt.frames_for_ms(rules.min_segment_ms)
        self._max = fmt.frames_for_ms(rules.max_segment_ms)
        self._lookback = min(fmt.frames_for_ms(rules.lookback_ms), self._max - self._min)
        self._pad = fmt.frames_for_ms(rules.onset_pad_ms)
        self._step = max(1, fmt.frames_for_ms(QUIET_STEP_MS))
        self._pending: npt.NDArray[np.int16] = np.zeros((0, fmt.channels), np.int16)
        self._base = 0  # stream frame of _pending[0]: the open span's first frame
        self._fed = 0
        self._analysed = 0  # windows cover the stream up to here
        self._windows: list[_Window] = []  # those that overlap the open span
        self._in_speech = False
        self._span_speech = 0  # speech windows in the open span
        self._silence_from: int | None = None  # where the current run of non-speech began
        self._next_seq = 0
        self._out: list[Span] = []

    @property
    def frames_fed(self) -> int:
        """Frames fed so far."""
        return self._fed

    def feed(self, chunk: npt.NDArray[np.int16]) -> list[Span]:
        """Take a chunk; return the spans it completes.

        Raises:
            ValueError: for a chunk that is not ``(frames, channels)`` of this stream.
        """
        if chunk.ndim != 2 or chunk.shape[1] != self._fmt.channels:
            raise ValueError(
                f"chunk of shape {chunk.shape} does not fit a stream of "
                f"{self._fmt.channels} channel(s)"
            )
        if chunk.shape[0]:
            self._pending = np.concatenate((self._pending, chunk))
            self._fed += int(chunk.shape[0])
        while self._analysed + self._hop <= self._fed:
            self._window(self._analysed)
            self._analysed += self._hop
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Span]:
        """The rest of the stream as a last span (speech if any of it was)."""
        if self._fed > self._base:
            self._emit(self._fed, speech=self._span_speech > 0)
        out, self._out = self._out, []
        return out

    def _window(self, start: int) -> None:
        offset = start - self._base
        probability = self._detector.probability(self._pending[offset : offset + self._hop])
        level = SPEECH_RELEASE if self._in_speech else SPEECH_THRESHOLD
        speech = self._in_speech = probability >= level
        self._windows.append(_Window(start, probability, speech))
        end = start + self._hop
        full = end + self._hop - self._base > self._max  # the next window would not fit
        if speech:
            self._silence_from = None
            if self._span_speech == 0:
                onset = max(self._base, start - self._pad)
                if onset - self._base >= self._hop:  # what came before is not speech
                    self._emit(onset, speech=False)
            self._span_speech += 1
            if full:
                self._hard_cut(end)
            return
        if self._silence_from is None:
            self._silence_from = start
        if self._span_speech == 0:
            if full:
                self._emit(end, speech=False)
        elif end - self._silence_from >= self._pause and end - self._base >= self._min:
            self._emit(end, speech=True)
        elif full:
            self._hard_cut(end)

    def _hard_cut(self, end: int) -> None:
        """Cut at the quietest point of the last `lookback_ms` before `end`."""
        low = max(self._base + self._min, end - self._lookback)
        self._emit(self._quietest(low, end), speech=True, hard_cut=True)
        # What stays after the cut starts the next span: count its speech windows again.
        self._span_speech = sum(
            1 for w in self._windows if w.speech and w.start + self._hop // 2 >= self._base
        )
        if self._silence_from is not None:
            self._silence_from = max(self._silence_from, self._base)

    def _quietest(self, low: int, high: int) -> int:
        """The frame in [low, high) at the centre of the quietest 10 ms step."""
        if high - low <= self._step:
            return high
        best, best_score = high, float("inf")
        steps = range(low, high - self._step + 1, self._step)
        levels = [self._level(at) for at in steps]
        top = max(levels) or 1.0
        for at, level in zip(steps, levels, strict=True):
            # The speech probability leads (it tells a pause from a quiet vowel); the level,
            # relative to the loudest step here, places the cut within the window.
            score = self._probability_at(at + self._step // 2) + 0.5 * level / top
            if score < best_score:
                best, best_score = at + self._step // 2, score
        return best

    def _probability_at(self, frame: int) -> float:
        for window in self._windows:
            if window.start <= frame < window.start + self._hop:
                return window.probability
        return 1.0  # pragma: no cover - every frame before `end` lies in a window

    def _level(self, at: int) -> float:
        piece = self._pending[at - self._base : at - self._base + self._step].astype(np.float64)
        return float(np.sqrt(np.mean(piece * piece))) if piece.size else 0.0

    def _emit(self, end: int, *, speech: bool, hard_cut: bool = False) -> None:
        size = end - self._base
        segment = Segment(self._next_seq, self._base, self._pending[:size])
        self._out.append(Span(segment, speech, hard_cut))
        self._next_seq += 1
        self._pending = self._pending[size:]
        self._base = end
        self._span_speech = 0
        self._windows = [w for w in self._windows if w.start + self._hop > end]
