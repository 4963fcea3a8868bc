"""Running statistics of a run, and the JSON summary printed at the end."""

from __future__ import annotations

import math
from collections import Counter

from stream_worker.outcome import FallbackReason
from stream_worker.reorder import Emitted


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`, or ``None`` when empty.

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.0
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _spread(values: list[float]) -> dict[str, float | None]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "p50": rounded(percentile(values, 50)),
        "p95": rounded(percentile(values, 95)),
        "max": rounded(max(values) if values else None),
    }


class RunStats:
    """Counts and latencies of the segments written so far.

    Latencies, in milliseconds:
        round_trip: first request sent -> final answer, for every segment that was sent;
        service: sts-service's own ``processing_time_ms``;
        emit_delay: last input sample of the segment arrived -> segment written;
        added: emit_delay minus the service's processing time, for dubbed segments (what
        the worker itself adds: encoding, HTTP, reordering, writing);
        start_offset / end_offset: SimulEval's StartOffset and EndOffset of dubbed speech
        segments in a live run (`stream_worker.latency`).

    Segments without speech (never sent, written as they came) are counted in `non_speech`,
    not as fallbacks.
    """

    def __init__(self) -> None:
        self.segments = 0
        self.dubbed = 0
        self.fitted = 0
        self.retries = 0
        self.frames = 0
        self.fallbacks: Counter[FallbackReason] = Counter()
        self.fallback_sequences: list[int] = []
        self.round_trip_ms: list[float] = []
        self.service_ms: list[float] = []
        self.emit_delay_ms: list[float] = []
        self.added_ms: list[float] = []
        self.non_speech = 0
        self.non_speech_frames = 0
        self.start_offset_ms: list[float] = []
        self.end_offset_ms: list[float] = []

    @property
    def fallback_total(self) -> int:
        """Segments written as original audio."""
        return sum(self.fallbacks.values())

    def record(self, emitted: Emitted) -> None:
        """Account for one written segment."""
        result = emitted.result
        self.segments += 1
        self.frames += int(emitted.samples.shape[0])
        self.retries += result.retries
        delay_ms = (emitted.emitted_at - emitted.ready_at) * 1000
        self.emit_delay_ms.append(delay_ms)
        if result.round_trip_ms is not None:
            self.round_trip_ms.append(result.round_trip_ms)
        if result.processing_ms is not None:
            self.service_ms.append(result.processing_ms)
        if not result.speech:
            self.non_speech += 1
            self.non_speech_frames += int(emitted.samples.shape[0])
        elif result.reason is None:
            self.dubbed += 1
            self.fitted += int(result.fitted)
            self.added_ms.append(delay_ms - (result.processing_ms or 0.0))
        else:
            self.fallbacks[result.reason] += 1
            self.fallback_sequences.append(emitted.sequence_number)

    def record_offsets(self, start_ms: float | None, end_ms: float | None) -> None:
        """Account for one dubbed segment's StartOffset and EndOffset (when known)."""
        if start_ms is not None and end_ms is not None:
            self.start_offset_ms.append(start_ms)
            self.end_offset_ms.append(end_ms)

    def round_trip_p(self, q: float) -> float | None:
        """Percentile of the round trips so far."""
        return percentile(self.round_trip_ms, q)

    def summary(self, fields: dict[str, object]) -> dict[str, object]:
        """The summary document: `fields` (run facts) first, then counts and latencies."""
        return {
            "event": "summary",
            **fields,
            "segments": {
                "total": self.segments,
                "dubbed": self.dubbed,
                "non_speech": self.non_speech,
                "fallback": self.fallback_total,
                "fitted": self.fitted,
                "retries": self.retries,
            },
            "fallbacks": {reason.value: self.fallbacks[reason] for reason in FallbackReason},
            "fallback_sequences": self.fallback_sequences,
            "latency_ms": {
                "round_trip": _spread(self.round_trip_ms),
                "service": _spread(self.service_ms),
                "emit_delay": _spread(self.emit_delay_ms),
                "added": _spread(self.added_ms),
                "start_offset": _spread(self.start_offset_ms),
                "end_offset": _spread(self.end_offset_ms),
            },
        }
