"""The offline echo backends: deterministic, instant, and the default of every stage."""

from __future__ import annotations

from sts_service.backends.base import (
    ASRBackend,
    AudioClip,
    Fragment,
    TranslationBackend,
    TTSBackend,
)


class EchoASR(ASRBackend):
    """Deterministic offline ASR: ``[echo] stream=<stream_id> seq=<sequence_number>``."""

    name = "echo"

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        """Describe the fragment instead of recognising speech."""
        return f"[echo] stream={fragment.stream_id} seq={fragment.sequence_number}"


class EchoTranslator(TranslationBackend):
    """Offline translation: the text tagged with the target language, e.g. ``[es] ...``."""

    name = "echo"

    async def translate(self, text: str, fragment: Fragment) -> str:
        """Prefix `text` with ``[<target_language>]``."""
        return f"[{fragment.target_language}] {text}"


class EchoTTS(TTSBackend):
    """Offline TTS: returns the source audio unchanged (same samples, length and format)."""

    name = "echo"

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Return `source` as the dubbed audio."""
        return source
