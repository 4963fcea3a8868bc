"""Per-segment timing as the field measures it: one record per segment, and SimulEval offsets.

StartOffset (EndOffset) is how long after the source speech starts (ends) its dub starts
(ends) in the output, counting everything: waiting for the pause, the service, buffering and
the output delay. Speech is located the same way in the source and in the dub: the first and
the last 10 ms step above -45 dBFS (`shared_audio.is_speech`'s level), so the offsets are
not flattered by silence a dub starts or ends with.

Times are seconds on the run's clock, from the start of the input. In a live run (network
input or ``--realtime``) a segment goes out at its slot (its input time plus the output
delay) or, if it was written later than that, when it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, speech_steps
from stream_worker.reorder import Emitted

STEP_MS = 10


def voiced_span(samples: npt.NDArray[np.int16], fmt: AudioFormat) -> tuple[float, float] | None:
    """Seconds from the start of `samples` to its first and past its last voiced 10 ms step.

    Every step judged at once (`speech_steps`, `is_speech` per step in one numpy pass): it
    runs on the event loop for each segment written.
    """
    frames = int(samples.shape[0])
    step = max(1, fmt.frames_for_ms(STEP_MS))
    voiced = np.flatnonzero(speech_steps(samples, step))
    if not voiced.size:
        return None
    end = min(frames, int(voiced[-1]) * step + step)
    return fmt.duration_s(int(voiced[0]) * step), fmt.duration_s(end)


@dataclass(frozen=True)
class Timing:
    """The clocks a record needs.

    Attributes:
        started: Run clock at the start of the input.
        input_origin_s: When (after `started`) the input's first sample arrived, as
            estimated from the chunks' arrival (0 for a file read at once).
        delay_s: The live output delay, or None when the run is not live.
    """

    started: float
    input_origin_s: float
    delay_s: float | None


def segment_record(
    emitted: Emitted, start_frame: int, fmt: AudioFormat, timing: Timing
) -> tuple[dict[str, Any], float | None, float | None]:
    """The JSON record of one written segment, and its StartOffset and EndOffset in ms.

    The offsets are None unless the segment was dubbed, holds speech and the run is live.
    """
    result = emitted.result
    frames = int(emitted.samples.shape[0])
    source_start = fmt.duration_s(start_frame)
    source_end = fmt.duration_s(start_frame + frames)
    emitted_wall = emitted.emitted_at - timing.started
    record: dict[str, Any] = {
        "seq": emitted.sequence_number,
        "source_start_s": round(source_start, 3),
        "source_end_s": round(source_end, 3),
        "speech": result.speech,
        "outcome": result.outcome,
        "service_ms": None if result.processing_ms is None else round(result.processing_ms, 1),
        "round_trip_ms": None if result.round_trip_ms is None else round(result.round_trip_ms, 1),
        "transcript": result.transcript,
        "translation": result.translation,
        "emitted_wall_s": round(emitted_wall, 3),
    }
    if timing.delay_s is None or result.audio is None or emitted.original is None:
        return record, None, None
    source_voice = voiced_span(emitted.original, fmt)
    dub_voice = voiced_span(emitted.samples, fmt)
    if source_voice is None or dub_voice is None:
        return record, None, None
    arrived = timing.input_origin_s + source_start  # when the segment's first sample came in
    out_start = max(emitted_wall, arrived + timing.delay_s)
    start_offset = (out_start + dub_voice[0]) - (arrived + source_voice[0])
    end_offset = (out_start + dub_voice[1]) - (arrived + source_voice[1])
    record["start_offset_ms"] = round(start_offset * 1000, 1)
    record["end_offset_ms"] = round(end_offset * 1000, 1)
    return record, start_offset * 1000, end_offset * 1000
