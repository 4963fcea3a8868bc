"""The stage interfaces every backend implements, and the values passed between stages.

A backend is one class implementing one stage:

* `ASRBackend.transcribe(audio, fragment) -> str`
* `TranslationBackend.translate(text, fragment) -> str`
* `TTSBackend.synthesize(text, source_audio, fragment) -> AudioClip`

Stages are ``async``. A blocking engine subclasses the ``Sync*Backend`` variant instead and
implements the ``*_sync`` method, which the pipeline runs in a worker thread
(`asyncio.to_thread`), so a deadline can always abandon it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, array_to_pcm, pcm_to_array
from shared_utils.contract import AudioPayload, ErrorCode, ProcessRequest

#: A pipeline stage, as named in the contract's `BackendHealth.stage` and `ErrorInfo.stage`.
StageName = Literal["asr", "translation", "tts"]


@dataclass(frozen=True)
class AudioClip:
    """Audio passed between stages: int16 samples shaped ``(frames, channels)`` and its format.

    A clip decoded from a request keeps that request's payload, so audio a backend passes
    through unchanged (the echo TTS) is answered without being encoded again.
    """

    samples: npt.NDArray[np.int16]
    fmt: AudioFormat
    _payload: AudioPayload | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: AudioPayload) -> AudioClip:
        """Decode a contract audio payload (already validated: whole S16LE frames).

        The samples are a read-only view on the decoded bytes.
        """
        fmt = payload.audio_format()
        return cls(pcm_to_array(payload.pcm_bytes(), fmt, copy=False), fmt, payload)

    def to_payload(self) -> AudioPayload:
        """Encode as a contract audio payload."""
        if self._payload is not None:
            return self._payload
        return AudioPayload.from_pcm(array_to_pcm(self.samples, self.fmt), self.fmt)

    @property
    def frame_count(self) -> int:
        """Number of frames."""
        return int(self.samples.shape[0])


@dataclass(frozen=True)
class Fragment:
    """What a stage may know about the fragment being processed (everything but the audio)."""

    fragment_id: str
    stream_id: str
    sequence_number: int
    source_language: str
    target_language: str
    voice: str | None = None

    @classmethod
    def from_request(cls, request: ProcessRequest) -> Fragment:
        """The fragment described by a contract request."""
        return cls(
            fragment_id=request.fragment_id,
            stream_id=request.stream_id,
            sequence_number=request.sequence_number,
            source_language=request.config.source_language,
            target_language=request.config.target_language,
            voice=request.config.voice,
        )


@dataclass(frozen=True)
class BackendState:
    """What a backend says about itself in the health report."""

    available: bool = True
    detail: str | None = None


class BackendError(Exception):
    """A backend failure with a contract error code (e.g. RATE_LIMIT, or an injected fault).

    Any other exception a backend raises is reported as MODEL_ERROR.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Backend:
    """Common part of every stage backend: a name and a health check."""

    #: Name shown in the health report (the registry name for built-in backends).
    name: str = "unnamed"

    def health(self) -> BackendState:
        """Whether this backend can serve now (override to check a model, a GPU, a key...)."""
        return BackendState()


class ASRBackend(Backend, ABC):
    """Speech recognition: audio in, transcript out."""

    @abstractmethod
    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        """Transcribe `audio` (in `fragment.source_language`)."""


class TranslationBackend(Backend, ABC):
    """Machine translation: text in the source language to text in the target language."""

    @abstractmethod
    async def translate(self, text: str, fragment: Fragment) -> str:
        """Translate `text` from `fragment.source_language` to `fragment.target_language`."""


class TTSBackend(Backend, ABC):
    """Speech synthesis: translated text to dubbed audio in the format of the source audio."""

    @abstractmethod
    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Speak `text`; `source` is the original audio (format, length, voice reference)."""


class SyncASRBackend(ASRBackend):
    """An ASR engine with a blocking API; the pipeline runs it in a worker thread."""

    @abstractmethod
    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        """Blocking transcription."""

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        """Run `transcribe_sync` in a worker thread."""
        return await asyncio.to_thread(self.transcribe_sync, audio, fragment)


class SyncTranslationBackend(TranslationBackend):
    """A translation engine with a blocking API; the pipeline runs it in a worker thread."""

    @abstractmethod
    def translate_sync(self, text: str, fragment: Fragment) -> str:
        """Blocking translation."""

    async def translate(self, text: str, fragment: Fragment) -> str:
        """Run `translate_sync` in a worker thread."""
        return await asyncio.to_thread(self.translate_sync, text, fragment)


class SyncTTSBackend(TTSBackend):
    """A TTS engine with a blocking API; the pipeline runs it in a worker thread."""

    @abstractmethod
    def synthesize_sync(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Blocking synthesis."""

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Run `synthesize_sync` in a worker thread."""
        return await asyncio.to_thread(self.synthesize_sync, text, source, fragment)
