"""Audio output: a WAV file (header valid even after an interruption) or raw PCM on stdout."""

from __future__ import annotations

from typing import BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, WavStreamWriter, array_to_pcm


class Sink(Protocol):
    """Where emitted audio goes, in order."""

    frames_written: int

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples."""

    def close(self) -> None:
        """Finish the output (idempotent)."""


class WavSink:
    """Writes a 16-bit WAV file through `shared_audio.WavStreamWriter`.

    Args:
        path: The output file (created or overwritten).
        fmt: The stream's format.
    """

    def __init__(self, path: str, fmt: AudioFormat) -> None:
        self._writer = WavStreamWriter(path, fmt)
        self.frames_written = 0

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples."""
        self._writer.write(samples)
        self.frames_written += int(samples.shape[0])

    def close(self) -> None:
        """Finalise the header and close the file."""
        self._writer.close()


class RawSink:
    """Writes raw interleaved PCM S16LE to a binary stream (stdout), flushing every write.

    Args:
        stream: The binary stream (left open).
        fmt: The stream's format.
    """

    def __init__(self, stream: BinaryIO, fmt: AudioFormat) -> None:
        self._stream = stream
        self._fmt = fmt
        self.frames_written = 0

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples and flush, so a downstream process gets them at once."""
        self._stream.write(array_to_pcm(samples, self._fmt))
        self._stream.flush()
        self.frames_written += int(samples.shape[0])

    def close(self) -> None:
        """Flush the stream (it is not closed: it is usually stdout)."""
        self._stream.flush()
