"""Audio format descriptions: sample rate, channel count and sample encoding."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared_audio.errors import AudioFormatError

#: Sample rates the platform handles end to end (Hz).
SUPPORTED_SAMPLE_RATES: frozenset[int] = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})
#: Channel counts the platform handles end to end.
SUPPORTED_CHANNELS: frozenset[int] = frozenset({1, 2})


class SampleEncoding(str, Enum):
    """How one sample is stored in raw PCM bytes."""

    S16LE = "s16le"
    F32LE = "f32le"

    @property
    def bytes_per_sample(self) -> int:
        """Size of one sample of one channel, in bytes."""
        return 2 if self is SampleEncoding.S16LE else 4


@dataclass(frozen=True)
class AudioFormat:
    """A validated description of raw PCM audio.

    Raises:
        AudioFormatError: if the rate, channel count or encoding is not supported.

    Example:
        >>> AudioFormat(sample_rate=16000, channels=1).frame_bytes
        2
    """

    sample_rate: int
    channels: int
    encoding: SampleEncoding = SampleEncoding.S16LE

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise AudioFormatError(f"sample_rate must be an int, got {self.sample_rate!r}")
        if self.sample_rate not in SUPPORTED_SAMPLE_RATES:
            raise AudioFormatError(
                f"sample_rate {self.sample_rate} Hz is not supported; "
                f"use one of {sorted(SUPPORTED_SAMPLE_RATES)}"
            )
        if isinstance(self.channels, bool) or not isinstance(self.channels, int):
            raise AudioFormatError(f"channels must be an int, got {self.channels!r}")
        if self.channels not in SUPPORTED_CHANNELS:
            raise AudioFormatError(
                f"channels {self.channels} is not supported; "
                f"use one of {sorted(SUPPORTED_CHANNELS)}"
            )
        encoding: object = self.encoding  # callers may pass the plain value, e.g. "s16le"
        if not isinstance(encoding, SampleEncoding):
            try:
                object.__setattr__(self, "encoding", SampleEncoding(encoding))
            except ValueError:
                raise AudioFormatError(
                    f"encoding {encoding!r} is not supported; "
                    f"use one of {[e.value for e in SampleEncoding]}"
                ) from None

    @property
    def frame_bytes(self) -> int:
        """Bytes in one frame (one sample for every channel)."""
        return self.channels * self.encoding.bytes_per_sample

    def frames_for_ms(self, duration_ms: int) -> int:
        """Number of frames in `duration_ms` milliseconds, rounded down."""
        return self.sample_rate * duration_ms // 1000

    def duration_s(self, frames: int) -> float:
        """Duration in seconds of `frames` frames."""
        return frames / self.sample_rate
