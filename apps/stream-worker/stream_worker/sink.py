"""Audio-only output: WAV files (header valid even after an interruption) or raw PCM on stdout.

Container outputs (video + dubbed audio) are in :mod:`stream_worker.mux`.
"""

from __future__ import annotations

import logging
import os
from typing import BinaryIO, Protocol

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame

from shared_audio import AudioFormat, WavStreamWriter
from stream_worker import conversions
from stream_worker.media import layout_name

logger = logging.getLogger(__name__)

#: The most PCM data one RIFF WAV file can hold: its size fields are 32-bit.
WAV_MAX_DATA_BYTES = 0xFFFFFFFF - 36


class Sink(Protocol):
    """Where emitted audio goes, in order."""

    frames_written: int

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples."""

    def close(self) -> None:
        """Finish the output (idempotent)."""


class FormatConverter:
    """Turns int16 chunks of one format into S16LE bytes of another (plain bytes if equal).

    The resampler is FFmpeg's (swresample, through PyAV), which keeps its state across
    chunks, so chunk boundaries leave no clicks; :meth:`flush` returns what it holds back.
    Its frames go out as bytes straight from their buffers (`conversions.frame_to_pcm`).
    """

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self._resampler: conversions.OutputResampler | None = None
        if source != target:
            self._resampler = conversions.OutputResampler(
                format="s16", layout=layout_name(target.channels), rate=target.sample_rate
            )

    def convert(self, samples: npt.NDArray[np.int16]) -> list[bytes]:
        """The samples as target-format PCM (possibly split, possibly held back in part)."""
        if self._resampler is None:
            return [conversions.to_pcm(samples, self.source)]
        frame = conversions.to_frame(samples, self.source, layout_name(self.target.channels))
        return self._pcm(conversions.resample(self._resampler, frame))

    def flush(self) -> list[bytes]:
        """What the resampler still holds, as target-format PCM."""
        if self._resampler is None:
            return []
        return self._pcm(conversions.resample(self._resampler, None))

    def _pcm(self, frames: list[AudioFrame]) -> list[bytes]:
        return [conversions.frame_to_pcm(frame, self.target) for frame in frames]


class WavSink:
    """Writes 16-bit WAV through `shared_audio.WavStreamWriter`, at the source's format.

    A RIFF WAV file cannot hold more than 4 GiB of data (about 6.2 h of 48 kHz stereo).
    **Decision:** past that the output rolls over to a next file, ``name.001.wav``,
    ``name.002.wav`` and so on: every file stays a valid WAV that any tool reads, no sample is
    lost, and the header of each stays valid after every write (a crash loses nothing
    written). RF64 would keep one file, but many tools cannot read it and FFmpeg's writer
    only fixes its header at the end. `paths` lists the files written.

    Args:
        path: The output file (created or overwritten).
        fmt: The format written to the sink (the service's).
        output_fmt: The format of the file (the source's); ``fmt`` if None.
        max_data_bytes: Data bytes per file before rolling over.
    """

    def __init__(
        self,
        path: str,
        fmt: AudioFormat,
        output_fmt: AudioFormat | None = None,
        *,
        max_data_bytes: int = WAV_MAX_DATA_BYTES,
    ) -> None:
        self._fmt = output_fmt or fmt
        self._convert = FormatConverter(fmt, self._fmt)
        self._base = path
        self._max_frames = max(1, max_data_bytes // self._fmt.frame_bytes)
        self.paths: list[str] = [path]
        self._writer = WavStreamWriter(path, self._fmt)
        self._in_file = 0
        self.frames_written = 0

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples."""
        self.frames_written += int(samples.shape[0])
        for part in self._convert.convert(samples):
            self._write(part)

    def _write(self, pcm: bytes) -> None:
        frame_bytes = self._fmt.frame_bytes
        data = memoryview(pcm)
        while data.nbytes:
            room = self._max_frames - self._in_file
            if room == 0:
                self._roll()
                continue
            head, data = data[: room * frame_bytes], data[room * frame_bytes :]
            self._writer.write_pcm(bytes(head) if len(head) < len(pcm) else pcm)
            self._in_file += head.nbytes // frame_bytes

    def _roll(self) -> None:
        self._writer.close()
        stem, ext = os.path.splitext(self._base)
        path = f"{stem}.{len(self.paths):03d}{ext or '.wav'}"
        logger.warning("WAV output reached the 4 GiB RIFF limit: continuing in %s", path)
        self._writer = WavStreamWriter(path, self._fmt)
        self.paths.append(path)
        self._in_file = 0

    def close(self) -> None:
        """Write what the resampler holds, finalise the header and close the file."""
        if not self._writer.closed:
            for part in self._convert.flush():
                self._write(part)
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
        self._stream.write(conversions.to_pcm(samples, self._fmt))
        self._stream.flush()
        self.frames_written += int(samples.shape[0])

    def close(self) -> None:
        """Flush the stream (it is not closed: it is usually stdout)."""
        self._stream.flush()
