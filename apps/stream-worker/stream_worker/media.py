"""The PyAV glue the media input, the media output and the WAV converter share.

One place for each, so the three cannot drift apart: the channel layout a channel count
means, where mono goes in a wider layout, and a packet carried with its time on the output
timeline. The conversions of the audio itself are in :mod:`stream_worker.conversions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from av.audio.layout import AudioLayout
from av.packet import Packet

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


@dataclass(frozen=True)
class TimedPacket:
    """A packet and its time in seconds on the output timeline (splices removed)."""

    time_s: float
    packet: Packet[Any]
