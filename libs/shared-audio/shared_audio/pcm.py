"""Conversion between raw interleaved PCM bytes and numpy sample arrays.

Arrays are always shaped ``(frames, channels)``: one row per frame, one column per channel,
which is exactly the memory layout of interleaved PCM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio.errors import PcmError
from shared_audio.format import AudioFormat, SampleEncoding

#: Full scale of signed 16-bit PCM: int16 / INT16_FULL_SCALE lies in [-1.0, 1.0).
INT16_FULL_SCALE = 32768.0
_INT16_MIN = -32768
_INT16_MAX = 32767

#: Little-endian on-the-wire dtype and native in-memory dtype of each encoding.
_WIRE_DTYPES: dict[SampleEncoding, np.dtype[Any]] = {
    SampleEncoding.S16LE: np.dtype("<i2"),
    SampleEncoding.F32LE: np.dtype("<f4"),
}
_NATIVE_DTYPES: dict[SampleEncoding, np.dtype[Any]] = {
    SampleEncoding.S16LE: np.dtype(np.int16),
    SampleEncoding.F32LE: np.dtype(np.float32),
}

#: Anything that exposes raw bytes through the buffer protocol.
PcmBytes = bytes | bytearray | memoryview


def pcm_to_array(data: PcmBytes, fmt: AudioFormat, *, copy: bool = True) -> npt.NDArray[Any]:
    r"""Decode interleaved PCM bytes into a ``(frames, channels)`` array.

    Args:
        data: Raw interleaved PCM bytes in ``fmt.encoding`` (little-endian).
        fmt: Format of the bytes; gives the channel count and the sample encoding.
        copy: With the default ``True`` the result owns its memory and is writable. With
            ``False`` it is a view on ``data`` (read-only when ``data`` is ``bytes``), which
            avoids the copy on little-endian machines.

    Returns:
        An ``int16`` array for S16LE or a ``float32`` array for F32LE, shaped
        ``(len(data) // fmt.frame_bytes, fmt.channels)``.

    Raises:
        PcmError: if the byte count is not a whole number of samples or of frames.

    Example:
        >>> fmt = AudioFormat(16000, 2)
        >>> pcm_to_array(b"\x01\x00\xff\xff", fmt).tolist()
        [[1, -1]]
    """
    size = memoryview(data).nbytes
    sample_bytes = fmt.encoding.bytes_per_sample
    if size % sample_bytes:
        raise PcmError(
            f"PCM data has {size} bytes, which is not a whole number of "
            f"{sample_bytes}-byte {fmt.encoding.value} samples ({size % sample_bytes} stray bytes)"
        )
    if size % fmt.frame_bytes:
        raise PcmError(
            f"PCM data has {size} bytes, which is not a whole number of {fmt.frame_bytes}-byte "
            f"frames ({fmt.channels} channels x {sample_bytes} bytes); the last frame is "
            f"partial ({size % fmt.frame_bytes} of {fmt.frame_bytes} bytes)"
        )
    wire = np.frombuffer(data, dtype=_WIRE_DTYPES[fmt.encoding]).reshape(-1, fmt.channels)
    native = _NATIVE_DTYPES[fmt.encoding]
    if copy or wire.dtype != native:
        return wire.astype(native)
    return wire


def array_to_pcm(samples: npt.NDArray[Any], fmt: AudioFormat) -> bytes:
    r"""Encode a ``(frames, channels)`` array as interleaved little-endian PCM bytes.

    A 1-D array is accepted for mono formats and treated as ``(frames, 1)``.

    Args:
        samples: ``int16`` samples for S16LE or ``float32`` samples for F32LE.
        fmt: Target format; its channel count must match the array.

    Returns:
        ``samples.shape[0] * fmt.frame_bytes`` bytes.

    Raises:
        PcmError: if the dtype does not match the encoding or the shape does not match the
            channel count.

    Example:
        >>> array_to_pcm(np.array([[1, -1]], dtype=np.int16), AudioFormat(16000, 2))
        b'\x01\x00\xff\xff'
    """
    expected = _NATIVE_DTYPES[fmt.encoding]
    if not isinstance(samples, np.ndarray):
        raise PcmError(f"samples must be a numpy array, got {type(samples).__name__}")
    if samples.dtype.kind != expected.kind or samples.dtype.itemsize != expected.itemsize:
        hint = (
            " (convert float audio with float32_to_int16)"
            if fmt.encoding is SampleEncoding.S16LE and samples.dtype.kind == "f"
            else ""
        )
        raise PcmError(f"{fmt.encoding.value} needs {expected} samples, got {samples.dtype}{hint}")
    check_frames(samples, fmt.channels, allow_1d=fmt.channels == 1)
    return samples.astype(_WIRE_DTYPES[fmt.encoding], copy=False).tobytes()


def int16_to_float32(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Scale ``int16`` samples to ``float32`` in ``[-1.0, 1.0)`` (divides by 32768).

    The scaling is exact, so ``float32_to_int16(int16_to_float32(x))`` returns ``x``.
    Any shape is accepted and kept.

    Raises:
        PcmError: if ``samples`` is not an ``int16`` array.

    Example:
        >>> int16_to_float32(np.array([-32768, 16384], dtype=np.int16)).tolist()
        [-1.0, 0.5]
    """
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise PcmError(f"int16_to_float32 expects int16 samples, got {_describe(samples)}")
    # Widen first, then scale in place: two tight loops beat one ufunc call with a casting
    # buffer (np.multiply(..., dtype=float32)) by about 1.5x.
    converted: npt.NDArray[np.float32] = samples.astype(np.float32)
    converted *= np.float32(1.0 / INT16_FULL_SCALE)
    return converted


def float32_to_int16(samples: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int16]:
    """Convert float samples (full scale ``[-1.0, 1.0)``) to ``int16``.

    Multiplies by 32768, rounds to the nearest integer (halves to even) and clips to
    ``[-32768, 32767]``, so ``1.0`` and anything louder become ``32767``. Any shape is
    accepted and kept; ``float32`` and ``float64`` inputs are accepted.

    Raises:
        PcmError: if ``samples`` is not a float array or contains NaN.

    Example:
        >>> float32_to_int16(np.array([-1.0, 0.5, 1.0, 3.0], dtype=np.float32)).tolist()
        [-32768, 16384, 32767, 32767]
    """
    if not isinstance(samples, np.ndarray) or samples.dtype.kind != "f":
        raise PcmError(f"float32_to_int16 expects float samples, got {_describe(samples)}")
    scaled: npt.NDArray[np.floating[Any]] = np.multiply(
        samples, samples.dtype.type(INT16_FULL_SCALE)
    )
    np.rint(scaled, out=scaled)
    np.clip(scaled, _INT16_MIN, _INT16_MAX, out=scaled)
    # NaN survives rint and clip, so a single min() reduction finds any NaN.
    if scaled.size and np.isnan(scaled.min()):
        first = int(np.flatnonzero(np.isnan(scaled.ravel()))[0])
        raise PcmError(
            f"float32_to_int16: samples contain NaN (first at flat index {first}); "
            "NaN has no PCM value"
        )
    return scaled.astype(np.int16)


def check_frames(
    samples: npt.NDArray[Any], channels: int | None, *, allow_1d: bool = False
) -> npt.NDArray[Any]:
    """Check that ``samples`` is a ``(frames, channels)`` array and return it as 2-D.

    Args:
        samples: The array to check.
        channels: Required channel count, or ``None`` to accept any.
        allow_1d: Accept a 1-D array as mono ``(frames, 1)`` (only when ``channels`` is
            ``None`` or 1).

    Returns:
        ``samples`` itself, or a ``(frames, 1)`` view of a 1-D array.

    Raises:
        PcmError: if ``samples`` is not an array of the expected shape.
    """
    if not isinstance(samples, np.ndarray):
        raise PcmError(f"samples must be a numpy array, got {type(samples).__name__}")
    if samples.ndim == 1 and allow_1d and channels in (None, 1):
        return samples.reshape(-1, 1)
    if samples.ndim != 2:
        raise PcmError(
            f"samples must be shaped (frames, channels), got {samples.ndim}-D shape "
            f"{samples.shape}; reshape mono audio with samples.reshape(-1, 1)"
        )
    if channels is not None and samples.shape[1] != channels:
        raise PcmError(
            f"samples have {samples.shape[1]} channels (shape {samples.shape}), expected {channels}"
        )
    return samples


def _describe(value: object) -> str:
    """Short description of a value for error messages: dtype for arrays, else the type."""
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return type(value).__name__
