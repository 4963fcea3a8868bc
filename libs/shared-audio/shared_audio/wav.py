"""WAV input and output through the standard library's :mod:`wave` module.

Input: integer PCM WAV, 8-bit (unsigned), 16-, 24- or 32-bit (signed), mono or stereo, at one
of :data:`~shared_audio.format.SUPPORTED_SAMPLE_RATES`. Samples always come back as ``int16``
``(frames, channels)`` arrays with an S16LE :class:`~shared_audio.format.AudioFormat`; wider
samples keep their 16 most significant bits. Anything else (float WAV, compressed formats,
more than two channels, other rates, not a WAV at all, truncated files) raises
:class:`~shared_audio.errors.WavError` naming the file and the problem.

Output: 16-bit PCM WAV.
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Iterator
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from shared_audio.errors import AudioFormatError, WavError
from shared_audio.format import AudioFormat, SampleEncoding
from shared_audio.pcm import array_to_pcm

#: A WAV file: a path, or an open binary file object (seekable for writing).
WavSource = str | os.PathLike[str] | BinaryIO

#: Data chunk sizes at or above this mean "length unknown" (streamed WAV, e.g. from a pipe,
#: whose writer could not go back to fill in the size: the field is left at or near its max).
WAV_UNKNOWN_LENGTH_BYTES = 0xFFFFFFFF - 8

#: wFormatTag values people actually meet, for readable errors.
_FORMAT_NAMES = {
    2: "Microsoft ADPCM",
    3: "IEEE float",
    6: "A-law",
    7: "mu-law",
    17: "IMA ADPCM",
    85: "MPEG layer 3",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE",
}
_UNKNOWN_FORMAT = re.compile(r"unknown format: (\d+)")


def read_wav(source: WavSource) -> tuple[AudioFormat, npt.NDArray[np.int16]]:
    """Read a whole integer-PCM WAV file.

    Args:
        source: A path or an open binary file object (not closed by this function).

    Returns:
        The S16LE format of the file and its samples as an ``int16`` ``(frames, channels)``
        array.

    Raises:
        WavError: if the file is not a supported WAV file (the message names the file).
        OSError: if a path cannot be opened.

    Example:
        >>> fmt, samples = read_wav("speech.wav")  # doctest: +SKIP
        >>> fmt.sample_rate, samples.shape  # doctest: +SKIP
        (16000, (32000, 1))
    """
    with _WavInput(source) as wav_in:
        raw = wav_in.reader.readframes(wav_in.declared_frames)
        samples = wav_in.decode(raw)
        wav_in.check_complete(samples.shape[0])
        return wav_in.fmt, samples


def iter_wav_chunks(
    source: WavSource, frames_per_chunk: int
) -> tuple[AudioFormat, Iterator[npt.NDArray[np.int16]]]:
    """Open a WAV file for streaming and return its format and an iterator of chunks.

    The header is read (and checked) immediately; the samples are read lazily, one chunk at a
    time. Every chunk has ``frames_per_chunk`` frames except possibly the last, shorter one.
    The file is closed when the iterator is exhausted or closed (a path only; an open file
    object passed in is left open).

    Args:
        source: A path or an open binary file object.
        frames_per_chunk: Frames per yielded chunk (> 0).

    Returns:
        The S16LE format of the file and an iterator of ``int16`` ``(frames, channels)`` arrays.

    Raises:
        WavError: if the file is not a supported WAV file, when called; or, while iterating,
            if the file turns out to be truncated.
        OSError: if a path cannot be opened.

    Example:
        >>> fmt, chunks = iter_wav_chunks("speech.wav", 1600)  # doctest: +SKIP
        >>> for chunk in chunks:  # doctest: +SKIP
        ...     handle(chunk)
    """
    if isinstance(frames_per_chunk, bool) or not isinstance(frames_per_chunk, int):
        raise WavError(f"frames_per_chunk must be an int, got {frames_per_chunk!r}")
    if frames_per_chunk <= 0:
        raise WavError(f"frames_per_chunk must be positive, got {frames_per_chunk}")
    wav_in = _WavInput(source)
    return wav_in.fmt, _iter_chunks(wav_in, frames_per_chunk)


def _iter_chunks(wav_in: _WavInput, frames_per_chunk: int) -> Iterator[npt.NDArray[np.int16]]:
    with wav_in:
        frames_read = 0
        while True:
            raw = wav_in.reader.readframes(frames_per_chunk)
            if not raw:
                break
            chunk = wav_in.decode(raw)
            frames_read += chunk.shape[0]
            yield chunk
        wav_in.check_complete(frames_read)


def write_wav(target: WavSource, samples: npt.NDArray[np.int16], fmt: AudioFormat) -> None:
    """Write ``int16`` samples as a 16-bit PCM WAV file.

    Args:
        target: A path (created or overwritten) or a seekable binary file object (left open).
        samples: ``int16`` ``(frames, channels)`` samples (1-D is accepted for mono).
        fmt: An S16LE format giving the sample rate and channel count.

    Raises:
        WavError: if ``fmt`` is not S16LE or ``target`` is not seekable.
        PcmError: if the samples do not match ``fmt`` (dtype or channel count).

    Example:
        >>> fmt = AudioFormat(16000, 1)
        >>> write_wav("silence.wav", np.zeros((16000, 1), dtype=np.int16), fmt)  # doctest: +SKIP
    """
    pcm = array_to_pcm(samples, _check_output_format(target, fmt))
    with WavStreamWriter(target, fmt) as writer:
        writer.write_pcm(pcm)


class WavStreamWriter:
    """Write a 16-bit PCM WAV file incrementally, for streaming output.

    The header is kept valid after every :meth:`write` and finalised on :meth:`close` (also
    called when leaving a ``with`` block, even on error), so a reader sees a valid file at any
    time. The target must be seekable because the header's length fields are patched.

    Args:
        target: A path (created or overwritten) or a seekable binary file object (left open).
        fmt: An S16LE format giving the sample rate and channel count.

    Raises:
        WavError: if ``fmt`` is not S16LE or ``target`` is not seekable.

    Example:
        >>> with WavStreamWriter("out.wav", AudioFormat(16000, 1)) as out:  # doctest: +SKIP
        ...     for chunk in chunks:
        ...         out.write(chunk)
    """

    def __init__(self, target: WavSource, fmt: AudioFormat) -> None:
        self._fmt = _check_output_format(target, fmt)
        self._name = _name_of(target)
        self._owned: BinaryIO | None = None
        if isinstance(target, (str, os.PathLike)):
            self._owned = open(os.fspath(target), "wb")  # closed in close()
            file: BinaryIO = self._owned
        else:
            if not _seekable(target):
                raise WavError(
                    f"{self._name}: WAV output needs a seekable file (the header is patched "
                    "with the final length); write to a file or io.BytesIO"
                )
            file = target
        self._writer: wave.Wave_write | None = wave.open(file, "wb")
        self._writer.setnchannels(fmt.channels)
        self._writer.setsampwidth(2)
        self._writer.setframerate(fmt.sample_rate)
        self._frames_written = 0

    @property
    def fmt(self) -> AudioFormat:
        """The format being written."""
        return self._fmt

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return self._frames_written

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._writer is None

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append ``int16`` ``(frames, channels)`` samples (1-D is accepted for mono).

        Raises:
            WavError: if the writer is closed.
            PcmError: if the samples do not match the format.
        """
        self.write_pcm(array_to_pcm(samples, self._fmt))

    def write_pcm(self, pcm: bytes) -> None:
        """Append raw S16LE PCM bytes (whole frames).

        Raises:
            WavError: if the writer is closed or ``pcm`` is not a whole number of frames.
        """
        if self._writer is None:
            raise WavError(f"{self._name}: write to a closed WavStreamWriter")
        if len(pcm) % self._fmt.frame_bytes:
            raise WavError(
                f"{self._name}: {len(pcm)} bytes of PCM is not a whole number of "
                f"{self._fmt.frame_bytes}-byte frames"
            )
        self._writer.writeframes(pcm)
        self._frames_written += len(pcm) // self._fmt.frame_bytes

    def close(self) -> None:
        """Finalise the header and close the file if this writer opened it (idempotent)."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if self._owned is not None:
                self._owned.close()
                self._owned = None

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _WavInput:
    """An open, validated WAV reader plus what is needed to decode and check its frames."""

    def __init__(self, source: WavSource) -> None:
        self.name = _name_of(source)
        self._owned: BinaryIO | None = None
        if isinstance(source, (str, os.PathLike)):
            self._owned = open(os.fspath(source), "rb")  # closed in close()
            file: BinaryIO = self._owned
        else:
            file = source
        try:
            self.reader = self._open(file)
            try:
                self._validate()
            except BaseException:
                self.reader.close()
                raise
        except BaseException:
            self._close_owned()
            raise

    def _open(self, file: BinaryIO) -> wave.Wave_read:
        try:
            return wave.open(file, "rb")
        except wave.Error as exc:
            raise WavError(f"{self.name}: not a supported WAV file: {_explain(exc)}") from None
        except EOFError:
            raise WavError(f"{self.name}: not a WAV file or truncated header") from None

    def _validate(self) -> None:
        reader = self.reader
        channels = reader.getnchannels()
        self.sample_width = reader.getsampwidth()
        if channels not in (1, 2):
            raise WavError(
                f"{self.name}: {channels} channels are not supported; use mono or stereo"
            )
        if self.sample_width not in (1, 2, 3, 4):
            raise WavError(
                f"{self.name}: {8 * self.sample_width}-bit samples are not supported; "
                "use 8, 16, 24 or 32-bit integer PCM"
            )
        try:
            self.fmt = AudioFormat(reader.getframerate(), channels, SampleEncoding.S16LE)
        except AudioFormatError as exc:
            raise WavError(f"{self.name}: {exc}") from None
        self.frame_size = channels * self.sample_width
        self.declared_frames = reader.getnframes()
        self.length_known = self.declared_frames * self.frame_size < WAV_UNKNOWN_LENGTH_BYTES

    def decode(self, raw: bytes) -> npt.NDArray[np.int16]:
        """Turn raw frames of the file's sample width into int16 ``(frames, channels)``."""
        if len(raw) % self.frame_size:
            raise WavError(
                f"{self.name}: truncated WAV data: {len(raw)} bytes is not a whole number of "
                f"{self.frame_size}-byte frames"
            )
        return _to_int16(raw, self.sample_width).reshape(-1, self.fmt.channels)

    def check_complete(self, frames_read: int) -> None:
        """Raise if the data chunk held fewer frames than its header declared."""
        if self.length_known and frames_read < self.declared_frames:
            raise WavError(
                f"{self.name}: truncated WAV data: header declares {self.declared_frames} "
                f"frames, file holds {frames_read}"
            )

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self._close_owned()

    def _close_owned(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> _WavInput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _to_int16(raw: bytes, sample_width: int) -> npt.NDArray[np.int16]:
    """Convert little-endian integer PCM of 1-4 bytes per sample to int16 (top 16 bits)."""
    if sample_width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)
    octets = np.frombuffer(raw, dtype=np.uint8)
    if sample_width == 1:
        # 8-bit WAV is unsigned with 128 as silence.
        centred = octets.astype(np.int16) - np.int16(128)
        widened: npt.NDArray[np.int16] = np.left_shift(centred, np.int16(8))
        return widened
    # 24/32-bit: the last two bytes of each little-endian sample are its 16 high bits.
    high = octets.reshape(-1, sample_width)[:, sample_width - 2 :]
    top: npt.NDArray[np.int16] = np.ascontiguousarray(high).view("<i2").reshape(-1)
    return top.astype(np.int16)


def _check_output_format(target: WavSource, fmt: AudioFormat) -> AudioFormat:
    if not isinstance(fmt, AudioFormat):
        raise WavError(f"{_name_of(target)}: fmt must be an AudioFormat, got {fmt!r}")
    if fmt.encoding is not SampleEncoding.S16LE:
        raise WavError(
            f"{_name_of(target)}: WAV output is 16-bit PCM; pass an S16LE format and int16 "
            f"samples (convert float audio with float32_to_int16), got {fmt.encoding.value}"
        )
    return fmt


def _explain(exc: wave.Error) -> str:
    message = str(exc)
    match = _UNKNOWN_FORMAT.search(message)
    if match:
        tag = int(match.group(1))
        name = _FORMAT_NAMES.get(tag, "unknown")
        return (
            f"sample format {tag} ({name}) is not supported; "
            "only integer PCM (8/16/24/32-bit) can be read"
        )
    return message


def _name_of(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    name: Any = getattr(source, "name", None)
    return name if isinstance(name, str) else f"<{type(source).__name__}>"


def _seekable(file: BinaryIO) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, ValueError, OSError):
        return False
