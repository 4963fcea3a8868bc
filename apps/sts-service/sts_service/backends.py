"""Backend registry, the offline echo backends, and the `faulty` wrapper for tests and demos.

Adding an engine is one class (subclass a stage interface from `sts_service.pipeline`) plus
one line in the matching registry below, e.g. ``"whisper": WhisperASR,`` in `ASR_BACKENDS`;
then ``STS_ASR_BACKEND=whisper`` selects it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared_audio import fit_to_length
from shared_utils.contract import ErrorCode
from sts_service.pipeline import (
    ASRBackend,
    AudioClip,
    Backend,
    BackendError,
    BackendState,
    Fragment,
    Pipeline,
    StageName,
    TranslationBackend,
    TTSBackend,
)

B = TypeVar("B", bound=Backend)


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


class BackendRegistry(Generic[B]):
    """Backend factories of one stage, by name.

    Example:
        >>> ASR_BACKENDS.create("echo").transcribe.__qualname__
        'EchoASR.transcribe'
    """

    def __init__(self, stage: StageName, factories: Mapping[str, Callable[[], B]]) -> None:
        self.stage = stage
        self._factories: dict[str, Callable[[], B]] = dict(factories)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def register(self, name: str, factory: Callable[[], B]) -> None:
        """Add a backend at run time (plugins, tests). Re-registering a name replaces it."""
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Remove a backend registered with `register` (no error if absent)."""
        self._factories.pop(name, None)

    def check(self, name: str) -> str:
        """Return `name` if registered.

        Raises:
            ValueError: naming the stage, the unknown name and the registered ones.
        """
        if name not in self._factories:
            raise ValueError(
                f"unknown {self.stage} backend {name!r}; registered: {', '.join(self.names())}"
            )
        return name

    def create(self, name: str) -> B:
        """Instantiate the backend registered as `name`; its `name` is set to the registry name.

        Raises:
            ValueError: if `name` is not registered.
        """
        backend = self._factories[self.check(name)]()
        backend.name = name
        return backend


#: The registries: one line per engine.
ASR_BACKENDS: BackendRegistry[ASRBackend] = BackendRegistry(
    "asr",
    {
        "echo": EchoASR,
    },
)
TRANSLATION_BACKENDS: BackendRegistry[TranslationBackend] = BackendRegistry(
    "translation",
    {
        "echo": EchoTranslator,
    },
)
TTS_BACKENDS: BackendRegistry[TTSBackend] = BackendRegistry(
    "tts",
    {
        "echo": EchoTTS,
    },
)


@dataclass(frozen=True)
class FaultConfig:
    """What the `faulty` wrapper injects (from the `STS_FAULT_*` settings).

    Attributes:
        latency_ms: Latency added to every fragment (in the ASR stage).
        fail_rate: Fraction of fragments that fail. The draw is a hash of
            (seed, stream_id, sequence_number), so a retried fragment fails again.
        fail_sequences: Sequence numbers that always fail.
        error_code: Contract code of injected failures; retryable or not per the code.
        length_factor: Multiplies the length of the dubbed audio (zero-padded or trimmed).
        seed: Seed of the fail-rate draw.
    """

    latency_ms: int = 0
    fail_rate: float = 0.0
    fail_sequences: frozenset[int] = field(default_factory=frozenset)
    error_code: ErrorCode = ErrorCode.MODEL_ERROR
    length_factor: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be within [0, 1], got {self.fail_rate}")
        if self.length_factor <= 0:
            raise ValueError(f"length_factor must be > 0, got {self.length_factor}")

    def draw(self, stream_id: str, sequence_number: int) -> float:
        """A uniform number in [0, 1) fixed by (seed, stream_id, sequence_number)."""
        key = f"{self.seed}\x00{stream_id}\x00{sequence_number}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def should_fail(self, stream_id: str, sequence_number: int) -> bool:
        """Whether the fragment (stream_id, sequence_number) gets an injected failure."""
        if sequence_number in self.fail_sequences:
            return True
        return self.fail_rate > 0 and self.draw(stream_id, sequence_number) < self.fail_rate


class FaultyASR(ASRBackend):
    """Wraps an ASR backend: adds latency, then fails the fragments `FaultConfig` selects."""

    def __init__(self, inner: ASRBackend, faults: FaultConfig) -> None:
        self.inner = inner
        self.faults = faults
        self.name = f"faulty({inner.name})"

    def health(self) -> BackendState:
        """Health of the wrapped backend."""
        return self.inner.health()

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        """Sleep `latency_ms`, raise an injected `BackendError` or delegate."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000.0)
        if self.faults.should_fail(fragment.stream_id, fragment.sequence_number):
            raise BackendError(
                self.faults.error_code,
                f"injected fault for stream {fragment.stream_id!r} "
                f"seq {fragment.sequence_number} (STS_FAULT_*)",
            )
        return await self.inner.transcribe(audio, fragment)


class FaultyTTS(TTSBackend):
    """Wraps a TTS backend: scales the length of its audio by `FaultConfig.length_factor`."""

    def __init__(self, inner: TTSBackend, faults: FaultConfig) -> None:
        self.inner = inner
        self.faults = faults
        self.name = f"faulty({inner.name})"

    def health(self) -> BackendState:
        """Health of the wrapped backend."""
        return self.inner.health()

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Delegate, then pad with silence or trim to ``length_factor`` times the length."""
        dubbed = await self.inner.synthesize(text, source, fragment)
        if self.faults.length_factor == 1.0:
            return dubbed
        frames = round(dubbed.frame_count * self.faults.length_factor)
        return AudioClip(fit_to_length(dubbed.samples, frames), dubbed.fmt)


def faulty(pipeline: Pipeline, faults: FaultConfig) -> Pipeline:
    """The `faulty` wrapper: the same pipeline with faults injected around its backends."""
    return Pipeline(
        FaultyASR(pipeline.asr, faults),
        pipeline.translator,
        FaultyTTS(pipeline.tts, faults),
        silence_threshold_dbfs=pipeline.silence_threshold_dbfs,
    )


def build_pipeline(
    asr: str = "echo",
    translation: str = "echo",
    tts: str = "echo",
    faults: FaultConfig | None = None,
) -> Pipeline:
    """A pipeline of registered backends, wrapped in `faulty` when `faults` is given.

    Raises:
        ValueError: if a name is not registered.
    """
    pipeline = Pipeline(
        ASR_BACKENDS.create(asr),
        TRANSLATION_BACKENDS.create(translation),
        TTS_BACKENDS.create(tts),
    )
    return faulty(pipeline, faults) if faults is not None else pipeline
