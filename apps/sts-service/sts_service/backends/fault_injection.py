"""The `faulty` wrapper: latency, failures and wrong-length audio injected for tests and demos."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared_audio import fit_to_length
from shared_utils.contract import ErrorCode
from sts_service.backends.base import (
    ASRBackend,
    AudioClip,
    Backend,
    BackendError,
    BackendState,
    Fragment,
    TTSBackend,
)

if TYPE_CHECKING:  # the pipeline module imports this package's stage interfaces
    from sts_service.pipeline import Pipeline


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


class _Wrapper(Backend):
    """Delegates loading, closing and health to the wrapped backend."""

    def __init__(self, inner: Backend, faults: FaultConfig) -> None:
        super().__init__(inner.options)
        self.faults = faults
        self.name = f"faulty({inner.name})"
        self._inner = inner

    def needs_loading(self) -> bool:
        """Whether the wrapped backend needs loading."""
        return self._inner.needs_loading()

    def load(self) -> None:
        """Load the wrapped backend."""
        self._inner.load()

    def close(self) -> None:
        """Close the wrapped backend."""
        self._inner.close()

    def health(self) -> BackendState:
        """Health of the wrapped backend."""
        return self._inner.health()


class FaultyASR(_Wrapper, ASRBackend):
    """Wraps an ASR backend: adds latency, then fails the fragments `FaultConfig` selects."""

    def __init__(self, inner: ASRBackend, faults: FaultConfig) -> None:
        super().__init__(inner, faults)
        self.inner = inner

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


class FaultyTTS(_Wrapper, TTSBackend):
    """Wraps a TTS backend: scales the length of its audio by `FaultConfig.length_factor`."""

    def __init__(self, inner: TTSBackend, faults: FaultConfig) -> None:
        super().__init__(inner, faults)
        self.inner = inner

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Delegate, then pad with silence or trim to ``length_factor`` times the length."""
        dubbed = await self.inner.synthesize(text, source, fragment)
        if self.faults.length_factor == 1.0:
            return dubbed
        frames = round(dubbed.frame_count * self.faults.length_factor)
        return AudioClip(fit_to_length(dubbed.samples, frames), dubbed.fmt)


def faulty(pipeline: Pipeline, faults: FaultConfig) -> Pipeline:
    """The `faulty` wrapper: the same pipeline with faults injected around its backends."""
    return pipeline.with_backends(
        asr=FaultyASR(pipeline.asr, faults), tts=FaultyTTS(pipeline.tts, faults)
    )
