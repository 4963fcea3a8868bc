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
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, field_validator

from shared_audio import AudioFormat
from shared_utils.contract import AudioPayload, ErrorCode, ProcessRequest
from sts_service.backends.glossary import load_glossaries
from sts_service.queueing import FairSlots, QueueFullError

#: A pipeline stage, as named in the contract's `BackendHealth.stage` and `ErrorInfo.stage`.
StageName = Literal["asr", "translation", "tts"]

_T = TypeVar("_T")

#: How to install the optional engines; named by every error about a missing one.
ENGINES_INSTALL_HINT = "make install ENGINES=1 (or pip install 'sts-service[engines]')"


def import_engine(module: str, distribution: str) -> ModuleType:
    """The optional engine module `module`, imported when a backend loads.

    Raises:
        RuntimeError: naming `distribution` and how to install the engines, if it is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(f"{distribution} is not installed: {ENGINES_INSTALL_HINT}") from None


class EngineOptions(BaseModel):
    """Settings of the real engines, each declared once, here.

    `StsSettings` inherits these fields, so each is also an ``STS_*`` variable
    (``whisper_model`` is ``STS_WHISPER_MODEL``): a new engine setting is one field here.
    The echo backends ignore them.
    """

    stage_concurrency: int = Field(
        default=2,
        ge=1,
        description="Most blocking engine calls at once per stage; more wait or get QUEUE_FULL.",
    )
    stage_queue: int = Field(
        default=4, ge=0, description="Fragments that may wait for a busy engine; more: QUEUE_FULL."
    )
    whisper_model: str = Field(
        default="",
        description="Whisper model: hub name or local directory; empty: the packaged tiny.en.",
    )
    whisper_cache_dir: str = Field(
        default="",
        description="Where the split multilingual model is joined; empty: ~/.cache/sts-service.",
    )
    whisper_device: str = Field(default="cpu", min_length=1, description="CTranslate2 device.")
    whisper_compute_type: str = Field(
        default="int8", min_length=1, description="CTranslate2 compute type."
    )
    whisper_threads: int = Field(default=2, ge=1, description="CPU threads per transcription.")
    whisper_beam_size: int = Field(
        default=5,
        ge=1,
        description="Beam width (1: greedy); 5 measured 5.8% WER against 7.8% greedy.",
    )
    whisper_no_speech_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="A segment this likely to be no speech, and not confident, is dropped.",
    )
    whisper_log_prob_threshold: float = Field(
        default=-1.0,
        le=0.0,
        description="A segment decoded with a lower mean log-probability is not trusted.",
    )
    whisper_compression_ratio_threshold: float = Field(
        default=2.4,
        gt=0.0,
        description="A segment whose text compresses better (repeats itself) is dropped.",
    )
    apertium_modes_dir: str = Field(
        default="/usr/share/apertium/modes", min_length=1, description="Apertium mode files."
    )
    apertium_timeout_ms: int = Field(
        default=5000, ge=100, description="Longest one Apertium translation may take."
    )
    apertium_preload: str = Field(
        default="en-es",
        description="Directions (source-target, comma-separated) warmed at start-up.",
    )
    glossary_dir: str = Field(
        default="",
        description="Folder of <source>-<target>.tsv glossaries (term, tab, translation).",
    )

    @field_validator("glossary_dir")
    @classmethod
    def _readable_glossaries(cls, value: str) -> str:
        # Read here, so a bad file stops the service at start-up, naming the file and line.
        load_glossaries(value)
        return value

    @property
    def apertium_timeout_s(self) -> float:
        """`apertium_timeout_ms` in seconds."""
        return self.apertium_timeout_ms / 1000.0

    def engine_options(self) -> EngineOptions:
        """Just the engine settings (from `StsSettings`, which inherits them)."""
        return EngineOptions.model_validate(
            self.model_dump(include=set(EngineOptions.model_fields))
        )


class AudioClip:
    """Audio passed between stages: int16 samples shaped ``(frames, channels)`` and its format.

    A clip read from a request keeps that request's payload and is decoded only when a stage
    reads its `samples`: audio a backend passes through unchanged (the echo TTS) is answered
    with the request's own base64 text, with no conversion at all.
    """

    __slots__ = ("_payload", "_samples", "fmt")

    def __init__(self, samples: npt.NDArray[np.int16], fmt: AudioFormat) -> None:
        self._samples: npt.NDArray[np.int16] | None = samples
        self._payload: AudioPayload | None = None
        self.fmt = fmt

    def __repr__(self) -> str:
        return f"AudioClip({self.frame_count} frames, {self.fmt})"

    @classmethod
    def from_payload(cls, payload: AudioPayload) -> AudioClip:
        """The clip of a contract audio payload (already validated: whole S16LE frames)."""
        clip = cls.__new__(cls)
        clip._samples = None
        clip._payload = payload
        clip.fmt = payload.audio_format()
        return clip

    @property
    def payload(self) -> AudioPayload | None:
        """The request payload this clip was read from (valid by the contract), if any."""
        return self._payload

    @property
    def samples(self) -> npt.NDArray[np.int16]:
        """The samples; a clip read from a payload is decoded here, once (a read-only view)."""
        if self._samples is None:
            assert self._payload is not None  # one of the two is always set
            self._samples = self._payload.samples()
        return self._samples

    def to_payload(self) -> AudioPayload:
        """As a contract audio payload: the one it was read from, else its samples encoded."""
        if self._payload is not None:
            return self._payload
        return AudioPayload.from_samples(self.samples, self.fmt)

    @property
    def frame_count(self) -> int:
        """Number of frames (of a payload not decoded yet: from its length alone)."""
        if self._samples is None:
            assert self._payload is not None
            return self._payload.frame_count()
        return int(self._samples.shape[0])


@dataclass(frozen=True)
class Fragment:
    """What a stage may know about the fragment being processed (everything but its audio).

    `context` is the stream's audio just before the fragment (contract 1.2), for ASR to hear
    a word the cut split whole; nothing is dubbed from it.
    """

    fragment_id: str
    stream_id: str
    sequence_number: int
    source_language: str
    target_language: str
    voice: str | None = None
    previous_text: str | None = None
    context: AudioClip | None = None

    @classmethod
    def from_request(cls, request: ProcessRequest) -> Fragment:
        """The fragment described by a contract request."""
        context = request.context_audio
        return cls(
            fragment_id=request.fragment_id,
            stream_id=request.stream_id,
            sequence_number=request.sequence_number,
            source_language=request.config.source_language,
            target_language=request.config.target_language,
            voice=request.config.voice,
            previous_text=request.previous_text,
            context=None if context is None else AudioClip.from_payload(context),
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
    """Common part of every stage backend: a name, start-up loading and a health check.

    Args:
        options: Engine settings; a backend reads the ones it needs.
    """

    #: Name shown in the health report (the registry name for built-in backends).
    name: str = "unnamed"
    #: Engine settings (the defaults when a subclass does not call `Backend.__init__`).
    options: EngineOptions = EngineOptions()
    #: Concurrency slots of a blocking engine, made on first use.
    _blocking_slots: FairSlots | None = None

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()

    def needs_loading(self) -> bool:
        """Whether `load` must run before the backend can serve (an engine with a model)."""
        return False

    def load(self) -> None:
        """Load models or start processes; blocking, run once in a worker thread at start-up.

        Raises:
            Exception: anything; the service then reports itself degraded with the reason.
        """

    def close(self) -> None:
        """Release processes and models at shutdown; blocking, called once."""

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
        return await _offload(self, fragment, lambda: self.transcribe_sync(audio, fragment))


class SyncTranslationBackend(TranslationBackend):
    """A translation engine with a blocking API; the pipeline runs it in a worker thread."""

    @abstractmethod
    def translate_sync(self, text: str, fragment: Fragment) -> str:
        """Blocking translation."""

    async def translate(self, text: str, fragment: Fragment) -> str:
        """Run `translate_sync` in a worker thread."""
        return await _offload(self, fragment, lambda: self.translate_sync(text, fragment))


class SyncTTSBackend(TTSBackend):
    """A TTS engine with a blocking API; the pipeline runs it in a worker thread."""

    @abstractmethod
    def synthesize_sync(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Blocking synthesis."""

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Run `synthesize_sync` in a worker thread."""
        return await _offload(self, fragment, lambda: self.synthesize_sync(text, source, fragment))


def _slots(backend: Backend) -> FairSlots:
    """The backend's slots, made on first use."""
    if backend._blocking_slots is None:
        options = backend.options
        backend._blocking_slots = FairSlots(options.stage_concurrency, options.stage_queue)
    return backend._blocking_slots


async def _offload(backend: Backend, fragment: Fragment, work: Callable[[], _T]) -> _T:
    """Run blocking `work` in a worker thread once a slot is free (QUEUE_FULL if none).

    Slots are shared fairly across the fragments' streams (`FairSlots`).
    """
    slots = _slots(backend)
    try:
        await slots.acquire(fragment.stream_id)
    except QueueFullError as exc:
        raise BackendError(ErrorCode.QUEUE_FULL, str(exc)) from None
    # Who gives the slot back: the thread when it ran, else the caller that gave up on it
    # (a cancelled call whose thread never started would otherwise keep its slot forever).
    lock = threading.Lock()
    state = ["pending"]

    def run() -> _T:
        with lock:
            if state[0] == "abandoned":
                raise asyncio.CancelledError
            state[0] = "running"
        try:
            return work()
        finally:
            slots.release()

    try:
        return await asyncio.to_thread(run)
    except BaseException:
        with lock:
            if state[0] == "pending":
                state[0] = "abandoned"
                slots.release()
        raise
