"""Why a segment fell back to its original audio, and what became of each segment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt


class FallbackReason(str, Enum):
    """Why a segment's original audio was written instead of dubbed audio."""

    STS_ERROR = "sts_error"  # status=failed, HTTP 5xx, or an answer that breaks the contract
    REJECTED = "rejected"  # HTTP 4xx with a non-retryable error: sts-service refused it
    UNREACHABLE = "unreachable"  # connection refused, reset or closed
    TIMEOUT = "timeout"  # the per-request deadline passed, or status=timeout
    BUSY = "busy"  # HTTP 429 until the next try would come after the segment's deadline
    PARTIAL = "partial"  # status=partial: sts-service itself doubts the audio
    SILENT_DUB = "silent_dub"  # status=success but digital silence for a speech segment
    CIRCUIT_OPEN = "circuit_open"  # the circuit breaker is open: sts-service was not called
    LATE = "late"  # the reorder buffer's deadline passed first; the answer is dropped
    SHUTDOWN = "shutdown"  # SIGINT/SIGTERM arrived before the answer
    INTERNAL = "internal"  # an unexpected error in the worker (a bug; logged with traceback)


@dataclass(frozen=True)
class DubResult:
    """The outcome of sending one segment to sts-service.

    Attributes:
        audio: Dubbed audio fitted to the segment's length, or ``None`` for a fallback.
        reason: Why it fell back (``None`` when dubbed).
        round_trip_ms: From the first request to the final answer (``None`` if never sent).
        processing_ms: sts-service's own `processing_time_ms` (``None`` without an answer).
        retries: Attempts after the first.
        fitted: Whether the dubbed audio had the wrong length and was padded or trimmed.
        detail: A human-readable explanation for logs.
        speech: False for a segment without speech: never sent, written as it came (not a
            fallback: nothing went wrong).
        transcript: What sts-service heard, when it said.
        translation: Its translation, when it said.
    """

    audio: npt.NDArray[np.int16] | None
    reason: FallbackReason | None
    round_trip_ms: float | None = None
    processing_ms: float | None = None
    retries: int = 0
    fitted: bool = False
    detail: str = ""
    speech: bool = True
    transcript: str | None = None
    translation: str | None = None

    @classmethod
    def not_speech(cls) -> DubResult:
        """A segment without speech: its original audio goes out, it is not sent."""
        return cls(audio=None, reason=None, detail="no speech", speech=False)

    @property
    def outcome(self) -> str:
        """``dubbed``, ``not_speech``, or the fallback reason."""
        if self.reason is not None:
            return self.reason.value
        return "dubbed" if self.speech else "not_speech"

    @classmethod
    def fallback(
        cls,
        reason: FallbackReason,
        detail: str,
        *,
        round_trip_ms: float | None = None,
        processing_ms: float | None = None,
        retries: int = 0,
    ) -> DubResult:
        """A result that falls back to the original audio."""
        return cls(
            audio=None,
            reason=reason,
            detail=detail,
            round_trip_ms=round_trip_ms,
            processing_ms=processing_ms,
            retries=retries,
        )
