"""Exceptions raised by shared_audio. All derive from ValueError: they describe bad input."""


class AudioError(ValueError):
    """Base class for every error raised by shared_audio."""


class AudioFormatError(AudioError):
    """An audio format description is invalid (rate, channels or encoding)."""


class PcmError(AudioError):
    """Raw PCM bytes or a sample array do not match the expected format.

    Raised for byte counts that are not whole frames, wrong dtypes, wrong channel counts and
    non-finite float samples.
    """


class WavError(AudioError):
    """A WAV file cannot be read or written: the message names the file and the problem."""


class SegmentError(AudioError):
    """Segmentation or reassembly got inconsistent input (bad sizes, gaps, mixed layouts)."""


class MixError(AudioError):
    """Two signals cannot be mixed or measured together (shape or dtype mismatch)."""
