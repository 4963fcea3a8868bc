"""The PyAV glue the media input, the media output and the WAV converter share.

One place for each conversion between numpy and PyAV, so the three cannot drift apart: the
channel layout a channel count means, ``int16`` samples to an s16 frame and back, and a
packet carried with its time on the output timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.packet import Packet

from shared_audio import AudioFormat

Samples = npt.NDArray[np.int16]


def layout_name(channels: int) -> str:
    """FFmpeg's layout for the 1 or 2 channels the service and the WAV output use."""
    return "mono" if channels == 1 else "stereo"


def to_frame(samples: Samples, fmt: AudioFormat) -> AudioFrame:
    """``(frames, channels)`` int16 samples as one packed s16 frame at ``fmt``'s rate."""
    frame = AudioFrame.from_ndarray(
        np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=layout_name(fmt.channels)
    )
    frame.sample_rate = fmt.sample_rate
    return frame


def to_samples(frame: AudioFrame, channels: int) -> Samples:
    """A packed s16 frame's samples as ``(frames, channels)`` int16."""
    return np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1, channels)


@dataclass(frozen=True)
class TimedPacket:
    """A packet and its time in seconds on the output timeline (splices removed)."""

    time_s: float
    packet: Packet[Any]
