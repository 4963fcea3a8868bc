"""The `faulty` wrapper: latency, failures and wrong-length audio injected for tests and demos."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, BeforeValidator, Field
from pydantic_settings import NoDecode

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


def _sequence_set(value: object) -> object:
    """``" 5, 2,,9 "`` as ``{2, 5, 9}``: the one parser of ``STS_FAULT_FAIL_SEQUENCES``."""
    if not isinstance(value, str):
        return value
    numbers: set[int] = set()
    for raw in value.split(","):
        part = raw.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()):
            raise ValueError(
                f"{part!r} is not a sequence number; expected comma-separated integers >= 0"
            )
        numbers.add(int(part))
    return frozenset(numbers)


def _upper_code(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


class FaultSettings(BaseModel):
    """What the `faulty` wrapper injects: the ``STS_FAULT_*`` settings, declared only here.

    `sts_service.config.StsSettings` inherits these fields, so each is one environment
    variable (``fault_latency_ms`` is ``STS_FAULT_LATENCY_MS``), validated once.
    """

    fault_enabled: bool = Field(default=False, description="Wrap backends in `faulty`.")
    fault_latency_ms: int = Field(
        default=0, ge=0, description="Latency added to every fragment (in the ASR stage)."
    )
    fault_fail_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of fragments that fail. The draw hashes (seed, stream_id, "
        "sequence_number), so a retried fragment fails again.",
    )
    fault_fail_sequences: Annotated[frozenset[int], NoDecode, BeforeValidator(_sequence_set)] = (
        Field(default=frozenset(), description="Comma-separated sequence numbers that always fail.")
    )
    fault_error_code: Annotated[ErrorCode, BeforeValidator(_upper_code)] = Field(
        default=ErrorCode.MODEL_ERROR,
        description="Contract code of injected failures; retryable or not per the code.",
    )
    fault_length_factor: float = Field(
        default=1.0, gt=0.0, description="Multiplies the length of the dubbed audio."
    )
    fault_seed: int = Field(default=0, description="Seed of the deterministic fail-rate draw.")

    def fault_config(self) -> FaultSettings | None:
        """These settings when `fault_enabled`, else None (no wrapper)."""
        return self if self.fault_enabled else None

    def draw(self, stream_id: str, sequence_number: int) -> float:
        """A uniform number in [0, 1) fixed by (seed, stream_id, sequence_number)."""
        key = f"{self.fault_seed}\x00{stream_id}\x00{sequence_number}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0**64

    def should_fail(self, stream_id: str, sequence_number: int) -> bool:
        """Whether the fragment (stream_id, sequence_number) gets an injected failure."""
        if sequence_number in self.fault_fail_sequences:
            return True
        rate = self.fault_fail_rate
        return rate > 0 and self.draw(stream_id, sequence_number) < rate


class _Wrapper(Backend):
    """Delegates loading, closing and health to the wrapped backend."""

    def __init__(self, inner: Backend, faults: FaultSettings) -> None:
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
    """Wraps an ASR backend: adds latency, then fails the fragments `FaultSettings` selects."""

    def __init__(self, inner: ASRBackend, faults: FaultSettings) -> None:
        super().__init__(inner, faults)
        self.inner = inner

    async def transcribe(self, audio: AudioClip, fragment: Fragment) -> str:
        """Sleep `latency_ms`, raise an injected `BackendError` or delegate."""
        if self.faults.fault_latency_ms:
            await asyncio.sleep(self.faults.fault_latency_ms / 1000.0)
        if self.faults.should_fail(fragment.stream_id, fragment.sequence_number):
            raise BackendError(
                self.faults.fault_error_code,
                f"injected fault for stream {fragment.stream_id!r} "
                f"seq {fragment.sequence_number} (STS_FAULT_*)",
            )
        return await self.inner.transcribe(audio, fragment)


class FaultyTTS(_Wrapper, TTSBackend):
    """Wraps a TTS backend: scales the length of its audio by `FaultSettings.length_factor`."""

    def __init__(self, inner: TTSBackend, faults: FaultSettings) -> None:
        super().__init__(inner, faults)
        self.inner = inner

    async def synthesize(self, text: str, source: AudioClip, fragment: Fragment) -> AudioClip:
        """Delegate, then pad with silence or trim to ``length_factor`` times the length."""
        dubbed = await self.inner.synthesize(text, source, fragment)
        if self.faults.fault_length_factor == 1.0:
            return dubbed
        frames = round(dubbed.frame_count * self.faults.fault_length_factor)
        return AudioClip(fit_to_length(dubbed.samples, frames), dubbed.fmt)


def faulty(pipeline: Pipeline, faults: FaultSettings) -> Pipeline:
    """The `faulty` wrapper: the same pipeline with faults injected around its backends."""
    return pipeline.with_backends(
        asr=FaultyASR(pipeline.asr, faults), tts=FaultyTTS(pipeline.tts, faults)
    )
