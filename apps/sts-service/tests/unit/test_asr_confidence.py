"""Whisper's made-up text is dropped, and a fragment with no confident speech keeps its audio.

Whisper answers speech it cannot follow (three times too fast, say) with fluent invented text,
"Thank you." most often. The segments carry the evidence: a low mean log-probability, a high
compression ratio (loops) or a high no-speech probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared_audio import AudioFormat
from shared_utils.contract import ProcessStatus
from sts_service.backends import EchoTranslator, EchoTTS
from sts_service.backends.base import ASRBackend, AudioClip, EngineOptions, Fragment
from sts_service.backends.whisper import confident_segments
from sts_service.pipeline import Pipeline

OPTIONS = EngineOptions()
FRAGMENT = Fragment("f-1", "s", 0, "en", "es")


@dataclass
class Segment:
    text: str
    avg_logprob: float = -0.2
    no_speech_prob: float = 0.01
    compression_ratio: float = 1.3


def test_confident_speech_is_kept() -> None:
    kept, dropped = confident_segments([Segment("The match starts at nine.")], OPTIONS)
    assert [s.text for s in kept] == ["The match starts at nine."] and dropped == []


def test_unsure_text_is_dropped() -> None:
    made_up = Segment(" Thank you.", avg_logprob=-1.3, no_speech_prob=0.2)
    kept, dropped = confident_segments([Segment("Goal."), made_up], OPTIONS)
    assert [s.text for s in kept] == ["Goal."] and dropped == [made_up]


def test_a_loop_is_dropped() -> None:
    loop = Segment("the the the the the the the the the", compression_ratio=3.1)
    assert confident_segments([loop], OPTIONS) == ([], [loop])


def test_no_speech_is_dropped() -> None:
    silence = Segment("you", avg_logprob=-0.5, no_speech_prob=0.9)
    assert confident_segments([silence], OPTIONS) == ([], [silence])


def test_the_thresholds_are_the_settings() -> None:
    made_up = Segment("Thank you.", avg_logprob=-1.3)
    lenient = EngineOptions(whisper_log_prob_threshold=-2.0)
    assert confident_segments([made_up], lenient) == ([made_up], [])


class NothingHeardASR(ASRBackend):
    name = "nothing-heard"

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        return ""


async def test_no_confident_speech_gets_the_original_audio() -> None:
    fmt = AudioFormat(16000, 1)
    noise = np.random.default_rng(1).integers(-8000, 8000, (1600, 1), dtype=np.int16)
    source = AudioClip(noise, fmt)
    result = await Pipeline(NothingHeardASR(), EchoTranslator(), EchoTTS()).run(source, FRAGMENT, 5)
    assert result.status is ProcessStatus.SUCCESS
    assert result.audio is not None
    np.testing.assert_array_equal(result.audio.samples, noise)
    assert result.transcript == "" and result.translated_text is None
