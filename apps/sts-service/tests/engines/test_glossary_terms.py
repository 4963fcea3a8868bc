"""A glossary with the real engines: names the engines get wrong come through ASR and MT right.

The sentences are spoken by Pico (en-US) and transcribed by the packaged tiny.en, then
translated by Apertium eng-spa. Without the glossary, whisper mishears "Siobhan Nguyen" and
"Volodymyr Zelenskyy", and Apertium turns "Golden State Warriors" into "Guerreros Estatales
Dorados": the test checks that first, so it proves the glossary is what fixes them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from shared_audio import AudioFormat, float32_to_int16
from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import AudioClip, EngineOptions, Fragment
from sts_service.backends.pico import pico_speak
from sts_service.backends.whisper import WhisperASR

pytestmark = [
    pytest.mark.skipif(
        shutil.which("pico2wave") is None, reason="Pico not installed: make install-engines-system"
    ),
    pytest.mark.skipif(
        shutil.which("lt-proc") is None,
        reason="Apertium not installed: make install-engines-system",
    ),
]

GLOSSARY = (
    "# team and people names, as the broadcaster writes them\n"
    "Golden State Warriors\tGolden State Warriors\n"
    "Siobhan Nguyen\tSiobhan Nguyen\n"
    "Volodymyr Zelenskyy\tVolodímir Zelenski\n"
)
FRAGMENT = Fragment("glossary", "glossary", 0, "en", "es")


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WhisperASR, ApertiumTranslator]]:
    folder = tmp_path_factory.mktemp("glossaries")
    (folder / "en-es.tsv").write_text(GLOSSARY, encoding="utf-8")
    options = EngineOptions(glossary_dir=str(folder))
    asr, mt = WhisperASR(options), ApertiumTranslator(options)
    try:
        asr.load()
    except Exception as exc:  # the engines extra or the packaged model is missing
        pytest.skip(f"whisper cannot load: {exc}")
    mt.load()
    assert asr.glossaries and mt.glossaries
    yield asr, mt
    mt.close()


def spoken(text: str) -> AudioClip:
    samples, rate = pico_speak(text, "en-US")
    padded = np.concatenate([samples, np.zeros(rate, np.float32)])  # a second of room
    return AudioClip(float32_to_int16(padded)[:, None], AudioFormat(rate, 1))


def without_glossary(
    engines: tuple[WhisperASR, ApertiumTranslator], audio: AudioClip
) -> tuple[str, str]:
    asr, mt = engines
    kept = asr.glossaries, mt.glossaries
    asr.glossaries, mt.glossaries = {}, {}
    try:
        transcript = asr.transcribe_sync(audio, FRAGMENT)
        return transcript, mt.translate_sync(transcript, FRAGMENT)
    finally:
        asr.glossaries, mt.glossaries = kept


@pytest.mark.parametrize(
    ("sentence", "misheard", "mistranslated", "kept"),
    [
        (
            "The Golden State Warriors beat the Celtics, said Siobhan Nguyen.",
            "Siobhan Nguyen",
            "Golden State Warriors",
            ["Golden State Warriors", "Siobhan Nguyen"],
        ),
        (
            "BlackRock will invest in Kyiv, said Volodymyr Zelenskyy.",
            "Volodymyr Zelenskyy",
            None,
            ["Volodímir Zelenski"],
        ),
    ],
)
def test_glossary_terms_come_through_asr_and_mt(
    engines: tuple[WhisperASR, ApertiumTranslator],
    sentence: str,
    misheard: str,
    mistranslated: str | None,
    kept: list[str],
) -> None:
    asr, mt = engines
    audio = spoken(sentence)
    plain_transcript, plain_translation = without_glossary(engines, audio)
    assert misheard not in plain_transcript, plain_transcript
    if mistranslated is not None:
        text_translated = mt.translate_sync(sentence, Fragment("t", "t", 0, "en", "es"))
        assert mistranslated in text_translated  # the glossary protects it...
        mt.glossaries, saved = {}, mt.glossaries
        try:  # ...and without it, Apertium translates the name word by word
            assert mistranslated not in mt.translate_sync(sentence, FRAGMENT)
        finally:
            mt.glossaries = saved

    transcript = asr.transcribe_sync(audio, FRAGMENT)
    assert misheard in transcript, transcript
    translated = mt.translate_sync(transcript, FRAGMENT)
    missing = [term for term in kept if term not in translated]
    assert not missing, f"{transcript!r} -> {translated!r} (without: {plain_translation!r})"


def test_the_hotwords_never_put_the_terms_into_silence_or_noise(
    engines: tuple[WhisperASR, ApertiumTranslator],
) -> None:
    rate = 16000
    noise = np.random.default_rng(0).normal(0, 2000, 3 * rate)
    for samples in (np.zeros(3 * rate), noise):
        clip = AudioClip(samples.astype(np.int16)[:, None], AudioFormat(rate, 1))
        assert engines[0].transcribe_sync(clip, FRAGMENT) == ""


def test_a_sentence_opening_with_a_term_keeps_the_verb_and_its_case(
    engines: tuple[WhisperASR, ApertiumTranslator],
) -> None:
    translated = engines[1].translate_sync(
        "Siobhan Nguyen said that the economy is growing.", FRAGMENT
    )
    assert translated.startswith("Siobhan Nguyen dijo que"), translated
