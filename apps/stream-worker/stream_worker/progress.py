"""Progress on stderr: a bar with an ETA for files, a status line for live input (tqdm)."""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm

from stream_worker.summary import RunStats


class Progress:
    """Shows audio seconds written, segments, fallbacks, p50/p95 round trip and RTF.

    Args:
        total_s: Duration of a file input (a bar with ETA), or ``None`` for live input
            (a status line: no total is known).
        stream: Where to draw (stderr); nothing is drawn without one.
        enabled: When False nothing is drawn.
    """

    def __init__(self, total_s: float | None, stream: TextIO | None, *, enabled: bool) -> None:
        self._bar: tqdm[Any] | None = None
        if enabled and stream is not None:
            self._bar = tqdm(
                total=None if total_s is None else round(total_s, 3),
                unit="s",
                unit_scale=False,
                desc="dubbing",
                file=stream,
                dynamic_ncols=True,
                mininterval=0.25,
                bar_format=None
                if total_s is not None
                else "{desc}: {n:.1f}s of audio [{elapsed}, {rate_fmt}{postfix}]",
            )

    def update(self, audio_s: float, stats: RunStats, wall_s: float) -> None:
        """Advance by `audio_s` seconds of audio written."""
        if self._bar is None:
            return
        p50 = stats.round_trip_p(50)
        p95 = stats.round_trip_p(95)
        rtf = wall_s / (self._bar.n + audio_s) if self._bar.n + audio_s > 0 else 0.0
        self._bar.set_postfix_str(
            f"segs={stats.segments} fb={stats.fallback_total} "
            f"rt p50/p95={_ms(p50)}/{_ms(p95)} rtf={rtf:.3f}",
            refresh=False,
        )
        self._bar.update(round(audio_s, 6))

    def close(self) -> None:
        """Remove the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"
