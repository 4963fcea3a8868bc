"""Dub or fallback: the quality rules an answer's audio must pass before it is written.

The client reports what sts-service said; this module alone decides whether that audio
replaces the segment. Rules, in order (documented in the README):

- ``partial`` -> fallback ``partial``: the service itself doubts the audio, and the promise
  is original audio rather than doubtful audio;
- audio in another format than the stream -> ``sts_error``;
- ``success`` with no audio for a segment that has frames -> ``sts_error``;
- a silent dub of audio that is not silent (`shared_audio.is_silent_dub`) -> ``silent_dub``;
- audio of the wrong length is fitted to the segment (padded with silence or trimmed).

These checks are made here only: sts-service answers what its engines made, and the answer's
payload was checked against the contract (rate, channels, whole frames) when it was parsed.
The request's audio is checked by the service alone, when it parses it.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, fit_to_length, is_silent_dub
from shared_utils.contract import ProcessStatus
from stream_worker import conversions
from stream_worker.client import StsAnswer, StsClient
from stream_worker.outcome import DubResult, FallbackReason

logger = logging.getLogger(__name__)


def judge(answer: StsAnswer, original: npt.NDArray[np.int16], fmt: AudioFormat) -> DubResult:
    """The dubbed audio to write for `original`, or a fallback saying why not.

    Args:
        answer: What sts-service answered for the segment.
        original: The segment's own audio.
        fmt: The stream's format.
    """
    response = answer.response

    def fallback(reason: FallbackReason, detail: str) -> DubResult:
        return DubResult.fallback(
            reason,
            detail,
            round_trip_ms=answer.round_trip_ms,
            processing_ms=response.processing_time_ms,
            retries=answer.retries,
        )

    if response.status is ProcessStatus.PARTIAL:
        message = response.error.message if response.error else "partial"
        return fallback(FallbackReason.PARTIAL, f"partial: {message}")
    if response.audio is None:  # pragma: no cover - the contract forbids success without audio
        return fallback(FallbackReason.STS_ERROR, "success without audio")
    got = response.audio.audio_format()
    if got != fmt:
        return fallback(
            FallbackReason.STS_ERROR,
            f"dubbed audio is {got.sample_rate} Hz x {got.channels}, the stream is "
            f"{fmt.sample_rate} Hz x {fmt.channels}",
        )
    dubbed = conversions.from_wire(response.audio)
    frames = int(original.shape[0])
    if frames and dubbed.shape[0] == 0:
        return fallback(FallbackReason.STS_ERROR, "status=success with empty audio")
    if is_silent_dub(original, dubbed):
        return fallback(
            FallbackReason.SILENT_DUB,
            "status=success but the dubbed audio is silent for a segment that is not",
        )
    fitted = dubbed.shape[0] != frames
    if fitted:
        logger.debug(
            "segment %d: dubbed audio has %d frames, fitted to %d",
            response.sequence_number,
            dubbed.shape[0],
            frames,
        )
        dubbed = fit_to_length(dubbed, frames)
    return DubResult(
        audio=dubbed,
        reason=None,
        round_trip_ms=answer.round_trip_ms,
        processing_ms=response.processing_time_ms,
        retries=answer.retries,
        fitted=fitted,
        transcript=response.transcript,
        translation=response.translated_text,
    )


async def dub(
    client: StsClient,
    sequence_number: int,
    samples: npt.NDArray[np.int16],
    fmt: AudioFormat,
    *,
    deadline: float | None = None,
    previous_text: str | None = None,
    context_audio: npt.NDArray[np.int16] | None = None,
) -> DubResult:
    """Send one segment of format `fmt` (answer due by `deadline`), judge the answer.

    Never raises.
    """
    reply = await client.send(
        sequence_number,
        samples,
        deadline=deadline,
        previous_text=previous_text,
        context_audio=context_audio,
    )
    if isinstance(reply, DubResult):
        return reply
    return judge(reply, samples, fmt)
