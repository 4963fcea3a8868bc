"""TTS with SVOX Pico (Debian's ``libttspico-utils``), espeak-ng for the languages it lacks.

Pico speaks en-US, en-GB, de-DE, es-ES, fr-FR and it-IT in a far more natural voice than
espeak-ng: whisper base recovers its Spanish with 0.0% WER on 12 news sentences, against 41.4%
for espeak-ng, at about the same speed (RTF 0.004-0.008). Any other target language is spoken
by espeak-ng (`EspeakTTS`), so ``STS_TTS_BACKEND=pico`` covers every language espeak-ng does.

Pico's voice data is in Debian's non-free component (``make install-engines-system`` enables
it and says why). ``pico2wave`` writes a 16 kHz mono WAV file only, so each call goes through
a temporary file; the process starts in a few milliseconds.

The dub is fitted into the source segment's duration: spoken once at Pico's own rate to
measure it, spoken again with the ``<speed level=...>`` markup that fills the slot, stripped of
the silence Pico leaves at the end (about 0.55 s), then time-stretched for the rest
(`fitting.fit_to_slot`) and resampled to the request's rate and channels.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from shared_audio import float32_to_int16, int16_to_float32, resample
from sts_service.backends.base import (
    AudioClip,
    BackendState,
    EngineOptions,
    Fragment,
    SyncTTSBackend,
)
from sts_service.backends.espeak import EspeakTTS
from sts_service.backends.fitting import Float32Array, fit_to_slot, trim_silence

logger = logging.getLogger(__name__)

#: Pico's voices by language tag; a bare language takes its first voice here.
PICO_VOICES = {
    "en-US": "en-US",
    "en-GB": "en-GB",
    "en": "en-US",
    "de": "de-DE",
    "es": "es-ES",
    "fr": "fr-FR",
    "it": "it-IT",
}
#: Pico's own rate in percent: 100 is its natural pace. Outside these bounds it sounds wrong.
BASE_LEVEL = 100
MIN_LEVEL = 70
MAX_LEVEL = 200
#: Pico's rate markup changes the duration less than its level says (level 150 shortens a
#: sentence by about 1.1-1.2x): the level is aimed this much further than the plain ratio.
LEVEL_GAIN = 2.0
#: Longest one ``pico2wave`` call may take (about 30 ms a sentence when the machine is idle).
CALL_TIMEOUT_S = 30.0
#: Characters that would start or end Pico's markup in the text.
_MARKUP = re.compile(r"[<>]")


def pico_voice(fragment: Fragment) -> str | None:
    """Pico's voice for the fragment's target language, or None when Pico has none.

    Example:
        >>> pico_voice(Fragment("f", "s", 0, "en", "es-419"))
        'es-ES'
        >>> pico_voice(Fragment("f", "s", 0, "en", "pt")) is None
        True
    """
    for tag in (fragment.voice, fragment.target_language):
        if not tag:
            continue
        if tag in PICO_VOICES:
            return PICO_VOICES[tag]
        base = tag.split("-")[0].lower()
        if base in PICO_VOICES:
            return PICO_VOICES[base]
    return None


def speed_level_for(natural_s: float, slot_s: float) -> int:
    """The ``<speed level>`` that brings speech lasting `natural_s` towards `slot_s`.

    Example:
        >>> speed_level_for(6.0, 5.0), speed_level_for(4.0, 5.0), speed_level_for(4.0, 0.5)
        (140, 70, 200)
    """
    if natural_s <= 0 or slot_s <= 0:
        return BASE_LEVEL
    wanted = BASE_LEVEL * (1.0 + LEVEL_GAIN * (natural_s / slot_s - 1.0))
    return round(min(MAX_LEVEL, max(MIN_LEVEL, wanted)))


def pico_speak(text: str, voice: str, level: int = BASE_LEVEL) -> tuple[Float32Array, int]:
    """`text` spoken by Pico's `voice` at speed `level`: (mono float32 samples, sample rate).

    Raises:
        RuntimeError: naming the voice and Pico's message, if ``pico2wave`` fails.
    """
    spoken = _MARKUP.sub(" ", text)
    if level != BASE_LEVEL:
        spoken = f'<speed level="{level}">{spoken}</speed>'
    with tempfile.TemporaryDirectory(prefix="sts-pico-") as folder:
        path = Path(folder) / "speech.wav"
        done = subprocess.run(
            ["pico2wave", "-l", voice, "-w", str(path), spoken],
            capture_output=True,
            timeout=CALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not path.is_file():
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(
                f"pico2wave -l {voice} failed (exit {done.returncode}): "
                f"{message[0] if message else 'no message'}"
            )
        with wave.open(str(path), "rb") as stream:
            rate = stream.getframerate()
            pcm = stream.readframes(stream.getnframes())
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    return int16_to_float32(samples), rate


class PicoTTS(SyncTTSBackend):
    """Speech synthesis with Pico where it has a voice, espeak-ng elsewhere."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.fallback = EspeakTTS(options)
        self.fallback_detail: str | None = None
        self._loaded = False

    def needs_loading(self) -> bool:
        """``pico2wave`` is checked and espeak-ng loaded at start-up."""
        return True

    def load(self) -> None:
        """Check that Pico is installed and speaks; load espeak-ng for the other languages.

        Raises:
            RuntimeError: naming how to install Pico, if ``pico2wave`` is missing.
        """
        if shutil.which("pico2wave") is None:
            raise RuntimeError(
                "SVOX Pico is not installed (no pico2wave on PATH); install it as root: "
                "make install-engines-system, or set STS_TTS_BACKEND=espeak"
            )
        pico_speak("Hello.", "en-US")
        try:
            self.fallback.load()
        except RuntimeError as exc:
            # Pico still serves its six voices; only the other languages are refused.
            self.fallback_detail = f"espeak-ng fallback unavailable: {exc}"
            logger.warning("%s", self.fallback_detail)
        self._loaded = True

    def health(self) -> BackendState:
        """Available once Pico answered; the detail names its voices and the fallback."""
        if not self._loaded:
            return BackendState(False, "pico2wave not checked yet")
        voices = ", ".join(sorted(set(PICO_VOICES.values())))
        fallback = self.fallback_detail or "espeak-ng for other languages"
        return BackendState(True, f"pico voices: {voices}; {fallback}")

    def synthesize_sync(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Speak `text` with Pico (or espeak-ng), fitted to the source's duration."""
        voice = pico_voice(fragment)
        if voice is None:
            if self.fallback_detail is not None:
                raise RuntimeError(
                    f"no Pico voice for {fragment.target_language!r} and {self.fallback_detail}"
                )
            return self.fallback.synthesize_sync(text, source, fragment)
        fmt = source.fmt
        slot_s = source.frame_count / fmt.sample_rate
        level = BASE_LEVEL
        rate = 16000
        speech: Float32Array = np.zeros(0, dtype=np.float32)
        if text.strip():
            natural, rate = pico_speak(text, voice)
            speech = trim_silence(natural)
            level = speed_level_for(speech.shape[0] / rate, slot_s)
            if level != BASE_LEVEL:
                faster, rate = pico_speak(text, voice, level)
                speech = trim_silence(faster)
        fit = fit_to_slot(speech, rate, round(slot_s * rate))
        fit.log(
            logger,
            fragment.fragment_id,
            voice,
            f"by pico {voice} at level {level}",
            speed_level=level,
        )
        at_rate = resample(float32_to_int16(fit.samples), rate, fmt.sample_rate)
        frames = np.zeros((source.frame_count, fmt.channels), dtype=np.int16)
        count = min(source.frame_count, at_rate.shape[0])
        frames[:count] = at_rate[:count, np.newaxis]
        return AudioClip(frames, fmt)
