"""The PyAV glue the media input, the media output and the WAV converter share.

One place for each conversion between numpy and PyAV, so the three cannot drift apart: the
channel layout a channel count means, where mono goes in a wider layout, ``int16`` samples to
an s16 frame and back, and a packet carried with its time on the output timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.layout import AudioLayout
from av.packet import Packet

from shared_audio import AudioFormat

Samples = npt.NDArray[np.int16]


def layout_name(channels: int) -> str:
    """FFmpeg's layout for the 1 or 2 channels the service and the WAV output use."""
    return "mono" if channels == 1 else "stereo"


def mono_slots(layout: str) -> tuple[int, ...]:
    """The channels of ``layout`` a mono signal is copied into, each at full level.

    The centre when the layout has one (where a broadcast or film mix carries dialogue, and
    where the source's own speech is), else the front pair, else (an unordered layout, e.g.
    ``6 channels``) every channel. FFmpeg's own mono upmix puts it into a front pair at -3 dB
    each (the pan law): the output was 3 dB quieter than the source, fallbacks included.

    Example:
        >>> mono_slots("stereo"), mono_slots("5.1"), mono_slots("quad"), mono_slots("mono")
        ((0, 1), (2,), (0, 1), (0,))
    """
    names = [channel.name for channel in AudioLayout(layout).channels]
    if "FC" in names:
        return (names.index("FC"),)
    front = tuple(i for i, name in enumerate(names) if name in ("FL", "FR"))
    return front or tuple(range(len(names)))


def widen(samples: Samples, layout: str) -> Samples:
    """Mono ``(frames, 1)`` samples as ``(frames, channels)`` of ``layout``, level kept.

    Each of `mono_slots` gets the samples unchanged, the other channels silence.
    """
    wide = np.zeros((samples.shape[0], AudioLayout(layout).nb_channels), dtype=np.int16)
    wide[:, list(mono_slots(layout))] = samples[:, :1]
    return wide


def to_frame(samples: Samples, fmt: AudioFormat, layout: str | None = None) -> AudioFrame:
    """``(frames, channels)`` int16 samples as one packed s16 frame at ``fmt``'s rate.

    With ``layout`` (where the frame goes next), mono samples are first `widen`-ed into it,
    so no resampler after this upmixes them (FFmpeg's upmix attenuates; see `mono_slots`).
    Other channel counts keep their own layout: FFmpeg maps stereo into a wider layout at
    full level, and a downmix is FFmpeg's.
    """
    name = layout_name(fmt.channels)
    if layout is not None and fmt.channels == 1 and AudioLayout(layout).nb_channels > 1:
        samples, name = widen(samples, layout), layout
    frame = AudioFrame.from_ndarray(
        np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=name
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
