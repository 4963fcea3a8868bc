"""Signal levels in dBFS, an energy-based speech/silence decision, and ducked mixing.

Full scale is 32768 for ``int16`` and 1.0 for float samples, so a full-scale square wave is
0 dBFS both as RMS and as peak (a full-scale sine has an RMS of -3.01 dBFS). Digital silence
and empty input are ``-inf`` dBFS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio.errors import MixError, PcmError

#: RMS level below which audio counts as silent: far under any speech, above the noise floor of
#: 16-bit dither, so a dub that is "almost nothing" is caught as well as digital zeros.
SILENCE_DBFS = -60.0
#: RMS level above which audio counts as speech (`is_speech`, `speech_steps`).
SPEECH_DBFS = -45.0

_FULL_SCALE = {
    np.dtype(np.int16): 32768.0,
    np.dtype(np.float32): 1.0,
    np.dtype(np.float64): 1.0,
}


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    """Root-mean-square level of all samples (every channel), in dBFS.

    Args:
        samples: ``int16``, ``float32`` or ``float64`` samples of any shape.

    Returns:
        ``20 * log10(rms / full_scale)``; ``-inf`` for silence or no samples.

    Raises:
        PcmError: for any other dtype.

    Example:
        >>> rms_dbfs(np.full((100, 2), 16384, dtype=np.int16))
        -6.020599913279624
    """
    full_scale = _full_scale(samples, "rms_dbfs")
    if samples.size == 0:
        return -math.inf
    flat = samples.reshape(-1).astype(np.float64)
    # einsum, not np.dot: dot goes through BLAS, whose thread pool wakes one thread per core
    # for every call -- milliseconds per fragment on a busy machine, for a microsecond sum.
    mean_square = float(np.einsum("i,i->", flat, flat)) / flat.size
    return _to_dbfs(math.sqrt(mean_square), full_scale)


def is_speech(samples: npt.NDArray[Any], threshold_dbfs: float = SPEECH_DBFS) -> bool:
    """Energy-based voice activity: is the RMS level above ``threshold_dbfs``?

    Deliberately simple (no spectral analysis): it tells a segment worth sending to speech
    recognition from background noise and silence.

    Raises:
        PcmError: for an unsupported dtype.

    Example:
        >>> is_speech(np.full((160, 1), 3000, dtype=np.int16))
        True
    """
    return rms_dbfs(samples) > threshold_dbfs


def speech_steps(
    samples: npt.NDArray[Any], step: int, threshold_dbfs: float = SPEECH_DBFS
) -> npt.NDArray[np.bool_]:
    """`is_speech` of each run of `step` frames (the last one may be shorter), in one pass.

    For callers that judge every 10 ms of a segment: one numpy pass rather than a call per
    step, which on an event loop running 100 streams cost about a tenth of a core.

    Raises:
        PcmError: for an unsupported dtype.
        ValueError: for a step below 1.

    Example:
        >>> speech_steps(np.array([[0], [0], [3000], [3000], [0]], dtype=np.int16), 2).tolist()
        [False, True, False]
    """
    full_scale = _full_scale(samples, "speech_steps")
    if step < 1:
        raise ValueError(f"speech_steps: step must be at least 1 frame, got {step}")
    frames = int(samples.shape[0]) if samples.ndim else 0
    if not frames:
        return np.zeros(0, dtype=bool)
    flat = samples.reshape(frames, -1).astype(np.float64)
    starts = np.arange(0, frames, step)
    sums = np.add.reduceat(np.einsum("ij,ij->i", flat, flat), starts)
    mean_square = sums / (np.minimum(step, frames - starts) * flat.shape[1])
    # RMS above the threshold, compared as a mean square (no square root or log per step).
    voiced: npt.NDArray[np.bool_] = mean_square > (full_scale * 10 ** (threshold_dbfs / 20)) ** 2
    return voiced


def is_silent(samples: npt.NDArray[Any], threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """Is the RMS level below ``threshold_dbfs``? Empty input counts as silent.

    Raises:
        PcmError: for an unsupported dtype.

    Example:
        >>> is_silent(np.zeros((160, 1), dtype=np.int16))
        True
    """
    return rms_dbfs(samples) < threshold_dbfs


def is_silent_dub(
    original: npt.NDArray[Any], dubbed: npt.NDArray[Any], threshold_dbfs: float = SILENCE_DBFS
) -> bool:
    """Is the dub silent (or empty) while the audio it replaces is not?

    The one definition of the "silent dub of non-silent input" sanity check, applied by
    sts-service before it answers ``success`` and by stream-worker before it writes a dub:
    a speech engine that reports success with no sound must not turn programme audio into
    silence. Silence in, silence out is fine.

    Args:
        original: The audio that was sent to be dubbed.
        dubbed: The audio that came back (any length, also empty).
        threshold_dbfs: RMS level below which audio counts as silent (see :func:`is_silent`).

    Raises:
        PcmError: for an unsupported dtype.

    Example:
        >>> speech = np.full((160, 1), 3000, dtype=np.int16)
        >>> is_silent_dub(speech, np.zeros((160, 1), dtype=np.int16))
        True
        >>> is_silent_dub(np.zeros((160, 1), dtype=np.int16), np.zeros((0, 1), dtype=np.int16))
        False
    """
    return not is_silent(original, threshold_dbfs) and is_silent(dubbed, threshold_dbfs)


def mix_ducked(
    original: npt.NDArray[Any], dub: npt.NDArray[Any], duck_db: float = -12.0
) -> npt.NDArray[Any]:
    """Mix a dubbed voice over the original, with the original attenuated by ``duck_db``.

    ``result = original * 10 ** (duck_db / 20) + dub``, rounded and clipped to ``int16`` for
    ``int16`` input, clipped to ``[-1.0, 1.0]`` for float input.

    Args:
        original: The original programme audio.
        dub: The dubbed voice; same shape and dtype as ``original`` (use
            :func:`~shared_audio.segment.fit_to_length` first if the lengths differ).
        duck_db: Gain applied to the original, in dB (finite; typically negative).

    Returns:
        A new array with the shape and dtype of the inputs.

    Raises:
        MixError: if shapes or dtypes differ or ``duck_db`` is not finite.
        PcmError: for an unsupported dtype.

    Example:
        >>> o = np.full((4, 1), 8000, dtype=np.int16)
        >>> d = np.full((4, 1), 30000, dtype=np.int16)
        >>> mix_ducked(o, d, duck_db=-6.0).ravel().tolist()
        [32767, 32767, 32767, 32767]
    """
    _full_scale(original, "mix_ducked")
    _full_scale(dub, "mix_ducked")
    if original.shape != dub.shape:
        raise MixError(
            f"mix_ducked: original has shape {original.shape} but dub has {dub.shape}; "
            "fit the dub with fit_to_length first"
        )
    if original.dtype != dub.dtype:
        raise MixError(
            f"mix_ducked: original is {original.dtype} but dub is {dub.dtype}; convert one "
            "with int16_to_float32 / float32_to_int16"
        )
    if not math.isfinite(duck_db):
        raise MixError(f"mix_ducked: duck_db must be finite, got {duck_db!r}")
    gain = 10.0 ** (duck_db / 20.0)
    if original.dtype == np.int16:
        mixed: npt.NDArray[np.float32] = np.multiply(original, np.float32(gain), dtype=np.float32)
        mixed += dub
        np.rint(mixed, out=mixed)
        np.clip(mixed, -32768, 32767, out=mixed)
        return mixed.astype(np.int16)
    mixed_f: npt.NDArray[np.floating[Any]] = original * original.dtype.type(gain)
    mixed_f += dub
    np.clip(mixed_f, -1.0, 1.0, out=mixed_f)
    return mixed_f


def _full_scale(samples: npt.NDArray[Any], where: str) -> float:
    if not isinstance(samples, np.ndarray):
        raise PcmError(f"{where}: samples must be a numpy array, got {type(samples).__name__}")
    try:
        return _FULL_SCALE[samples.dtype]
    except KeyError:
        raise PcmError(
            f"{where}: dtype {samples.dtype} is not supported; use int16, float32 or float64"
        ) from None


def _to_dbfs(level: float, full_scale: float) -> float:
    if level == 0.0:
        return -math.inf
    return 20.0 * math.log10(level / full_scale)
