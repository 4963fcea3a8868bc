"""The speech -> text -> speech pipeline runner.

`Pipeline.run` calls the three stages in order, times each one, enforces the deadline and turns
every outcome into a `PipelineResult` (it never raises for a backend's failure). The stage
interfaces live in `sts_service.backends.base`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from shared_utils.contract import (
    BackendHealth,
    ErrorCode,
    ErrorInfo,
    ProcessStatus,
    StageTimings,
)
from sts_service.backends.base import (
    ASRBackend,
    AudioClip,
    Backend,
    BackendError,
    Fragment,
    StageName,
    TranslationBackend,
    TTSBackend,
)
from sts_service.health import backend_reports
from sts_service.loading import LoadState, StageLoad, StageLoading

__all__ = ["LoadState", "Pipeline", "PipelineResult", "StageLoad"]  # the load types: re-exported

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


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

    Loading (`sts_service.loading`) and health (`sts_service.health`) live in their own
    modules; the pipeline gives them its backends.

    Args:
        asr: The speech recognition backend.
        translator: The translation backend.
        tts: The speech synthesis backend.

    Example:
        >>> from sts_service.backends import EchoASR, EchoTranslator, EchoTTS
        >>> pipeline = Pipeline(EchoASR(), EchoTranslator(), EchoTTS())
        >>> [h.name for h in pipeline.health()]
        ['echo', 'echo', 'echo']
    """

    def __init__(self, asr: ASRBackend, translator: TranslationBackend, tts: TTSBackend) -> None:
        self.asr = asr
        self.translator = translator
        self.tts = tts
        self.loading = StageLoading(self.backends())

    @property
    def loads(self) -> dict[StageName, StageLoad]:
        """Start-up loading of each stage."""
        return self.loading.loads

    async def load(self) -> None:
        """Load every backend that needs it (`StageLoading.load`)."""
        await self.loading.load()

    def load_state(self) -> LoadState:
        """The pipeline's load state (`StageLoading.state`)."""
        return self.loading.state()

    def close(self) -> None:
        """Release every backend's processes and models (blocking); errors are logged."""
        self.loading.close()

    def health(self) -> list[BackendHealth]:
        """Health of every backend, as the contract gives it."""
        return [report.contract() for report in backend_reports(self.loading)]

    def with_backends(
        self,
        *,
        asr: ASRBackend | None = None,
        translator: TranslationBackend | None = None,
        tts: TTSBackend | None = None,
    ) -> Pipeline:
        """The same pipeline with some backends replaced, e.g. wrapped.

        Call it before `load`: the new pipeline loads its backends itself.
        """
        return Pipeline(asr or self.asr, translator or self.translator, tts or self.tts)

    def backends(self) -> list[tuple[StageName, Backend]]:
        """The backends, with their stage names, in pipeline order."""
        return [("asr", self.asr), ("translation", self.translator), ("tts", self.tts)]

    async def run(self, audio: AudioClip, fragment: Fragment, timeout_s: float) -> PipelineResult:
        """Process one fragment; never raises for a backend failure or a missed deadline.

        Args:
            audio: The source audio.
            fragment: Identity and languages of the fragment.
            timeout_s: Deadline for the three stages together, in seconds.

        Returns:
            `success` with what the stages made; `failed` when a backend raised or returned
            something that is not text or int16 audio; `timeout` when the deadline passed
            first. Whether the dub is good enough to air (its format, level and length
            against the segment) is the client's to judge, once: it has the segment and
            receives the dub (stream-worker's policy). The service never answers `partial`.
        """
        not_ready = self.loading.not_ready()
        if not_ready is not None:
            return PipelineResult(
                status=ProcessStatus.FAILED, timings=StageTimings(), error=not_ready
            )
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
        logger.debug(
            "fragment %s: %r -> %r",
            fragment.fragment_id,
            progress.transcript,
            progress.translated_text,
            extra={
                "fragment_id": fragment.fragment_id,
                "sequence_number": fragment.sequence_number,
                "transcript": progress.transcript,
                "translated_text": progress.translated_text,
                **{f"{stage}_ms": round(ms, 1) for stage, ms in progress.timings.items()},
            },
        )
        return PipelineResult(
            status=ProcessStatus.SUCCESS,
            timings=progress.stage_timings(),
            audio=dubbed,
            transcript=progress.transcript,
            translated_text=progress.translated_text,
        )

    async def _stages(self, audio: AudioClip, fragment: Fragment, progress: _Progress) -> AudioClip:
        transcript = await self._timed(
            "asr", progress, lambda: self.asr.transcribe(audio, fragment)
        )
        self._check_text("asr", transcript)
        progress.transcript = transcript
        if not transcript.strip():
            # No confident speech (silence, music, speech the ASR could not follow): the
            # original audio is a better dub than silence or a made-up sentence.
            return audio
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
        if dubbed.payload is not None:  # a request's own audio: checked when it was parsed
            return
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
        busy = isinstance(exc, BackendError) and exc.code is ErrorCode.QUEUE_FULL
        outcome = "is busy" if busy else "failed"
        return f"{stage} backend {self._backend_name(stage)!r} {outcome}: {detail}"

    def _backend_name(self, stage: StageName) -> str:
        return dict(self.backends())[stage].name


async def _with_timeout(work: Coroutine[Any, Any, _T], timeout_s: float) -> _T:
    """Await `work`, cancelling it after `timeout_s` (raises `asyncio.TimeoutError`)."""
    if sys.version_info >= (3, 11):
        # Same semantics as wait_for without wrapping the work in a new task.
        async with asyncio.timeout(timeout_s):
            return await work
    else:  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(work, timeout_s)
