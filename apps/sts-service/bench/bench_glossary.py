"""Glossary bench: how many names come through whisper and Apertium, without and with one.

Four English news sentences full of names (written for this bench) are spoken by Pico en-US,
transcribed by the packaged tiny.en, and translated by Apertium eng-spa, once without a
glossary and once with the en-es glossary below. It counts the glossary terms found whole:
in the transcript (the source term) and in the translation of the sentence's text (the
target term), and times each stage, so the hotwords' cost shows.

Without the engines installed it says so, with the install command, and exits 0.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from shared_audio import AudioFormat, float32_to_int16
from sts_service.backends.apertium import ApertiumTranslator
from sts_service.backends.base import AudioClip, EngineOptions, Fragment
from sts_service.backends.glossary import Glossary
from sts_service.backends.pico import pico_speak
from sts_service.backends.whisper import WhisperASR

SENTENCES = [
    "The Golden State Warriors beat the Celtics, said Siobhan Nguyen.",
    "BlackRock will invest in Kyiv, said Volodymyr Zelenskyy.",
    "Mbappé scored for Paris Saint-Germain against Borussia Dortmund.",
    "Dua Lipa met Keir Starmer at the Wembley stadium.",
]
GLOSSARY = {
    "Golden State Warriors": "Golden State Warriors",
    "Celtics": "Celtics",
    "Siobhan Nguyen": "Siobhan Nguyen",
    "BlackRock": "BlackRock",
    "Kyiv": "Kiev",
    "Volodymyr Zelenskyy": "Volodímir Zelenski",
    "Mbappé": "Mbappé",
    "Paris Saint-Germain": "Paris Saint-Germain",
    "Borussia Dortmund": "Borussia Dortmund",
    "Dua Lipa": "Dua Lipa",
    "Keir Starmer": "Keir Starmer",
    "Wembley": "Wembley",
}
INSTALL = "make install ENGINES=1, then as root: make install-engines-system"
#: `-v`: print each transcript and its translation.
VERBOSE = "-v" in sys.argv[1:]
FRAGMENT = Fragment("bench", "glossary", 0, "en", "es")


def found(terms: list[str], text: str) -> int:
    """How many of `terms` are in `text` as whole words (any case)."""
    matcher = Glossary("en", "es", tuple((term, term) for term in terms))
    return len({part for part in matcher.split(text) if isinstance(part, int)})


def in_sentence(sentence: str) -> list[str]:
    """The glossary's source terms in `sentence`."""
    return [term for term in GLOSSARY if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", sentence)]


def main() -> int:
    """Print the terms found and the stage times, without and with the glossary."""
    if shutil.which("pico2wave") is None or shutil.which("lt-proc") is None:
        print(f"bench_glossary: Pico or Apertium is not installed: {INSTALL}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-glossary-"))
    lines = [f"{source}\t{target}" for source, target in GLOSSARY.items()]
    (folder / "en-es.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = EngineOptions(glossary_dir=str(folder))
    asr, mt = WhisperASR(options), ApertiumTranslator(options)
    try:
        asr.load()
        mt.load()
    except RuntimeError as exc:  # the engines extra, the model or an Apertium pair is missing
        print(f"bench_glossary: {exc}")
        return 0
    clips = []
    for sentence in SENTENCES:
        samples, rate = pico_speak(sentence, "en-US")
        padded = np.concatenate([samples, np.zeros(rate, np.float32)])
        clips.append(AudioClip(float32_to_int16(padded)[:, None], AudioFormat(rate, 1)))
    glossaries = asr.glossaries
    total = sum(len(in_sentence(sentence)) for sentence in SENTENCES)
    print(f"{len(SENTENCES)} sentences, {total} glossary terms (Pico en-US, tiny.en, eng-spa)")
    print("glossary | ASR terms heard | ASR ms/sentence | MT terms kept | MT ms/sentence")
    try:
        for label, active in (("without", {}), ("with", glossaries)):
            asr.glossaries = mt.glossaries = active
            heard = kept = 0
            asr_s = mt_s = 0.0
            for sentence, clip in zip(SENTENCES, clips, strict=True):
                terms = in_sentence(sentence)
                started = time.perf_counter()
                transcript = asr.transcribe_sync(clip, FRAGMENT)
                asr_s += time.perf_counter() - started
                heard += found(terms, transcript)
                if VERBOSE:
                    print(
                        f"  {label}: {transcript!r} -> {mt.translate_sync(transcript, FRAGMENT)!r}"
                    )
                started = time.perf_counter()
                translated = mt.translate_sync(sentence, FRAGMENT)
                mt_s += time.perf_counter() - started
                kept += found([GLOSSARY[term] for term in terms], translated)
            count = len(SENTENCES)
            print(
                f"{label:8} | {heard:6d} / {total:<6d} | {asr_s * 1000 / count:15.0f} | "
                f"{kept:5d} / {total:<5d} | {mt_s * 1000 / count:14.1f}"
            )
    finally:
        mt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
