"""The speech -> text -> speech pipeline: typed stage interfaces and the runner.

A backend is one class implementing one stage:

* `ASRBackend.transcribe(audio, fragment) -> str`
* `TranslationBackend.translate(text, fragment) -> str`
* `TTSBackend.synthesize(text, source_audio, fragment) -> AudioClip`

Stages are ``async``. A blocking engine subclasses the ``Sync*Backend`` variant instead and
implements the ``*_sync`` method, which the pipeline runs in a worker thread
(`asyncio.to_thread`), so a deadline can always abandon it.

`Pipeline.run` calls the three stages in order, times each one, enforces the deadline and turns
every outcome into a `PipelineResult` (it never raises for a backend's failure).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from shared_audio import AudioFormat, array_to_pcm, is_silent_dub, pcm_to_array
from shared_utils.contract import (
    AudioPayload,
    BackendHealth,
    ErrorCode,
    ErrorInfo,
    ProcessRequest,
    ProcessStatus,
    StageTimings,
)

logger = logging.getLogger(__name__)

#: A pipeline stage, as named in the contract's `BackendHealth.stage` and `ErrorInfo.stage`.
StageName = Literal["asr", "translation", "tts"]

_T = TypeVar("_T")


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


@dataclass(frozen=True)
class PipelineResult:
    """Outcome of one fragment, ready to become a contract `ProcessResponse`."""

    status: ProcessStatus
    timings: StageTimings
    audio: AudioClip | None = None
    transcript: str | None = None
    translated_text: str | None = None
    error: ErrorInfo | None = None


@dataclass
class _Progress:
    """What has happened so far; read after a deadline cancels the stages."""

    stage: StageName = "asr"
    timings: dict[StageName, float] = field(default_factory=dict)
    transcript: str | None = None
    translated_text: str | None = None

    def stage_timings(self) -> StageTimings:
        return StageTimings(
            asr_ms=self.timings.get("asr", 0.0),
            translation_ms=self.timings.get("translation", 0.0),
            tts_ms=self.timings.get("tts", 0.0),
        )


class _StageFailedError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Pipeline:
    """Runs ASR, translation and TTS in order, with per-stage timing and a deadline.

    Args:
        asr: The speech recognition backend.
        translator: The translation backend.
        tts: The speech synthesis backend.
        silence_threshold_dbfs: Audio whose RMS level is at or below this is silent, for the
            "silent dub of non-silent input" sanity check.

    Example:
        >>> from sts_service.backends import EchoASR, EchoTranslator, EchoTTS
        >>> pipeline = Pipeline(EchoASR(), EchoTranslator(), EchoTTS())
        >>> [h.name for h in pipeline.health()]
        ['echo', 'echo', 'echo']
    """

    def __init__(
        self,
        asr: ASRBackend,
        translator: TranslationBackend,
        tts: TTSBackend,
        *,
        silence_threshold_dbfs: float = -60.0,
    ) -> None:
        self.asr = asr
        self.translator = translator
        self.tts = tts
        self.silence_threshold_dbfs = silence_threshold_dbfs

    def backends(self) -> list[tuple[StageName, Backend]]:
        """The backends, with their stage names, in pipeline order."""
        return [("asr", self.asr), ("translation", self.translator), ("tts", self.tts)]

    def health(self) -> list[BackendHealth]:
        """Health of every backend; a health check that raises counts as unavailable."""
        report: list[BackendHealth] = []
        for stage, backend in self.backends():
            try:
                state = backend.health()
            except Exception as exc:
                logger.exception("health check of %s backend %r failed", stage, backend.name)
                state = BackendState(False, f"health check failed: {type(exc).__name__}: {exc}")
            report.append(
                BackendHealth.model_validate(
                    {
                        "stage": stage,
                        "name": backend.name,
                        "available": state.available,
                        "detail": state.detail,
                    }
                )
            )
        return report

    async def run(self, audio: AudioClip, fragment: Fragment, timeout_s: float) -> PipelineResult:
        """Process one fragment; never raises for a backend failure or a missed deadline.

        Args:
            audio: The source audio.
            fragment: Identity and languages of the fragment.
            timeout_s: Deadline for the three stages together, in seconds.

        Returns:
            `success`; `partial` when the dubbed audio fails a sanity check; `failed` when a
            backend raised; `timeout` when the deadline passed first.
        """
        progress = _Progress()
        try:
            dubbed = await _with_timeout(self._stages(audio, fragment, progress), timeout_s)
        except _StageFailedError as failure:
            return PipelineResult(
                status=ProcessStatus.FAILED,
                timings=progress.stage_timings(),
                transcript=progress.transcript,
                translated_text=progress.translated_text,
                error=failure.error,
            )
        except asyncio.TimeoutError:
            stage = progress.stage
            logger.warning(
                "fragment %s timed out after %.0f ms in the %s stage",
                fragment.fragment_id,
                timeout_s * 1000,
                stage,
                extra={"fragment_id": fragment.fragment_id, "stage": stage},
            )
            return PipelineResult(
                status=ProcessStatus.TIMEOUT,
                timings=progress.stage_timings(),
                transcript=progress.transcript,
                translated_text=progress.translated_text,
                error=ErrorInfo.of(
                    ErrorCode.TIMEOUT,
                    f"pipeline exceeded timeout_ms={round(timeout_s * 1000)} "
                    f"in the {stage} stage ({self._backend_name(stage)!r} backend)",
                    stage=stage,
                ),
            )
        problem = self._sanity_problem(audio, dubbed)
        return PipelineResult(
            status=ProcessStatus.PARTIAL if problem else ProcessStatus.SUCCESS,
            timings=progress.stage_timings(),
            audio=dubbed,
            transcript=progress.transcript,
            translated_text=progress.translated_text,
            error=ErrorInfo.of(ErrorCode.MODEL_ERROR, problem, stage="tts") if problem else None,
        )

    async def _stages(self, audio: AudioClip, fragment: Fragment, progress: _Progress) -> AudioClip:
        transcript = await self._timed(
            "asr", progress, lambda: self.asr.transcribe(audio, fragment)
        )
        self._check_text("asr", transcript)
        progress.transcript = transcript
        translated = await self._timed(
            "translation", progress, lambda: self.translator.translate(transcript, fragment)
        )
        self._check_text("translation", translated)
        progress.translated_text = translated
        dubbed = await self._timed(
            "tts", progress, lambda: self.tts.synthesize(translated, audio, fragment)
        )
        self._check_clip(dubbed)
        return dubbed

    def _check_text(self, stage: StageName, text: object) -> None:
        if not isinstance(text, str):
            raise self._bad_output(stage, f"returned {type(text).__name__}, expected str")

    def _check_clip(self, dubbed: object) -> None:
        if not isinstance(dubbed, AudioClip):
            raise self._bad_output("tts", f"returned {type(dubbed).__name__}, expected AudioClip")
        samples = dubbed.samples
        if (
            not isinstance(samples, np.ndarray)
            or samples.dtype != np.int16
            or samples.ndim != 2
            or samples.shape[1] != dubbed.fmt.channels
        ):
            shape = getattr(samples, "shape", None)
            dtype = getattr(samples, "dtype", type(samples).__name__)
            raise self._bad_output(
                "tts",
                f"returned samples of dtype {dtype} and shape {shape}, expected int16 "
                f"shaped (frames, {dubbed.fmt.channels})",
            )

    def _bad_output(self, stage: StageName, what: str) -> _StageFailedError:
        message = f"{stage} backend {self._backend_name(stage)!r} {what}"
        logger.error(message)
        return _StageFailedError(ErrorInfo.of(ErrorCode.MODEL_ERROR, message, stage))

    async def _timed(
        self, stage: StageName, progress: _Progress, work: Callable[[], Awaitable[_T]]
    ) -> _T:
        progress.stage = stage
        started = time.perf_counter()
        try:
            return await work()
        except BackendError as exc:
            raise _StageFailedError(
                ErrorInfo.of(exc.code, self._failure_message(stage, exc), stage)
            ) from exc
        except Exception as exc:
            logger.exception(
                "%s backend %r raised while processing a fragment",
                stage,
                self._backend_name(stage),
            )
            raise _StageFailedError(
                ErrorInfo.of(
                    ErrorCode.MODEL_ERROR,
                    self._failure_message(stage, exc),
                    stage,
                )
            ) from exc
        finally:
            progress.timings[stage] = (time.perf_counter() - started) * 1000.0

    def _failure_message(self, stage: StageName, exc: BaseException) -> str:
        detail = exc.message if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
        return f"{stage} backend {self._backend_name(stage)!r} failed: {detail}"

    def _backend_name(self, stage: StageName) -> str:
        return dict(self.backends())[stage].name

    def _sanity_problem(self, source: AudioClip, dubbed: AudioClip) -> str | None:
        """Why the dubbed audio cannot be trusted, or None when it looks right."""
        if dubbed.fmt != source.fmt:
            return (
                f"tts backend {self.tts.name!r} returned {dubbed.fmt.sample_rate} Hz / "
                f"{dubbed.fmt.channels} ch audio for {source.fmt.sample_rate} Hz / "
                f"{source.fmt.channels} ch input"
            )
        if is_silent_dub(source.samples, dubbed.samples, self.silence_threshold_dbfs):
            kind = "empty" if dubbed.frame_count == 0 else "silent"
            return f"tts backend {self.tts.name!r} returned {kind} audio for non-silent input"
        return None


async def _with_timeout(work: Coroutine[Any, Any, _T], timeout_s: float) -> _T:
    """Await `work`, cancelling it after `timeout_s` (raises `asyncio.TimeoutError`)."""
    if sys.version_info >= (3, 11):
        # Same semantics as wait_for without wrapping the work in a new task.
        async with asyncio.timeout(timeout_s):
            return await work
    else:  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(work, timeout_s)
