"""TTS with espeak-ng (GPL-3), from the ``espeakng-loader`` wheel through ctypes.

The wheel ships ``libespeak-ng.so`` and all of its voice data, so nothing is downloaded. The
voice follows the target language (``es``, ``es-419``, ``fr``, ...; the request's ``voice``
wins when given). The library keeps its state per process and is not thread-safe: one
synthesis at a time in the whole process, whatever the number of backends.

The dub is fitted into the source segment's duration: spoken once at the base rate to measure
it, spoken again at the rate that fills the slot (`fitting.speech_rate_for`), time-stretched for
the rest, then resampled to the request's rate and channels (`shared_audio.resample`).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_audio import float32_to_int16, int16_to_float32, resample
from shared_utils.contract import ErrorCode
from sts_service.backends.base import (
    AudioClip,
    BackendError,
    BackendState,
    EngineOptions,
    Fragment,
    SyncTTSBackend,
    import_engine,
)
from sts_service.backends.fitting import (
    BASE_WPM,
    Float32Array,
    fit_to_slot,
    speech_rate_for,
    trim_silence,
)

logger = logging.getLogger(__name__)

# espeak-ng's C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The process-wide espeak-ng library; every call holds `lock`."""

    lock = threading.Lock()
    _instance: _Espeak | None = None

    def __init__(self) -> None:
        loader: Any = importlib.import_module("espeakng_loader")
        self.lib = ctypes.CDLL(loader.get_library_path())
        data_path = str(loader.get_data_path()).encode()
        self.rate = int(
            self.lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT
            )
        )
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.rate})")
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._callback = _SynthCallback(self._collect)  # kept referenced while installed
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Espeak:
        """The library, initialised on first use (call with `lock` held)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: object) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # go on

    def set_voice(self, voice: str) -> bool:
        """Select a voice by name (a language code); False if there is none."""
        return int(self.lib.espeak_SetVoiceByName(voice.encode())) == _EE_OK

    def speak(self, text: str, wpm: int) -> Float32Array:
        """Synthesise `text` at `wpm` words per minute: mono float32 at `rate`."""
        self._chunks = []
        self.lib.espeak_SetParameter(_RATE, wpm, 0)
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        self.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        return int16_to_float32(np.concatenate(self._chunks))


def speak(text: str, voice: str = "en", wpm: int = BASE_WPM) -> tuple[Float32Array, int]:
    """`text` spoken by espeak-ng in `voice` at `wpm`: (mono float32 samples, sample rate).

    For demos, tests and benchmarks that need speech to feed the service.

    Raises:
        ValueError: if espeak-ng has no such voice.
    """
    with _Espeak.lock:
        engine = _Espeak.get()
        if not engine.set_voice(voice):
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        return engine.speak(text, wpm), engine.rate


def voice_candidates(fragment: Fragment) -> list[str]:
    """Voices to try, best first: the request's voice, the language, its base language."""
    language = fragment.target_language
    candidates = [fragment.voice] if fragment.voice else []
    candidates += [language, language.split("-")[0]]
    return list(dict.fromkeys(candidates))


class EspeakTTS(SyncTTSBackend):
    """Speech synthesis with espeak-ng, fitted into the source segment's duration."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self._engine: _Espeak | None = None

    def needs_loading(self) -> bool:
        """The library and its data load at start-up."""
        return True

    def load(self) -> None:
        """Load and initialise libespeak-ng."""
        import_engine("espeakng_loader", "espeakng-loader")
        with _Espeak.lock:
            self._engine = _Espeak.get()

    def health(self) -> BackendState:
        """Available once the library is loaded."""
        if self._engine is None:
            return BackendState(False, "libespeak-ng not loaded")
        return BackendState(True, f"espeak-ng at {self._engine.rate} Hz")

    def synthesize_sync(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Speak `text` in the target language's voice, fitted to the source's duration.

        Raises:
            BackendError: INVALID_REQUEST (not retryable) when no voice matches.
        """
        engine = self._engine
        if engine is None:
            raise RuntimeError("libespeak-ng is not loaded")
        fmt = source.fmt
        slot_s = source.frame_count / fmt.sample_rate
        with _Espeak.lock:
            voice = next((v for v in voice_candidates(fragment) if engine.set_voice(v)), None)
            if voice is None:
                raise BackendError(
                    ErrorCode.INVALID_REQUEST,
                    f"espeak-ng has no voice for {', '.join(voice_candidates(fragment))}",
                )
            speech = trim_silence(engine.speak(text, BASE_WPM)) if text.strip() else None
            wpm = BASE_WPM
            if speech is not None:
                wpm = speech_rate_for(speech.shape[0] / engine.rate, slot_s)
                if wpm != BASE_WPM:
                    speech = trim_silence(engine.speak(text, wpm))
        slot_frames = round(slot_s * engine.rate)
        if speech is None:
            speech = np.zeros(0, dtype=np.float32)
        fit = fit_to_slot(speech, engine.rate, slot_frames)
        fit.log(logger, fragment.fragment_id, voice, f"at {wpm} wpm", speech_rate_wpm=wpm)
        mono = float32_to_int16(fit.samples)
        at_rate = resample(mono, engine.rate, fmt.sample_rate)
        frames = np.zeros((source.frame_count, fmt.channels), dtype=np.int16)
        count = min(source.frame_count, at_rate.shape[0])
        frames[:count] = at_rate[:count, np.newaxis]
        return AudioClip(frames, fmt)
