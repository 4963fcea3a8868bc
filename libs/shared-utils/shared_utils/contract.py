"""The STS wire contract: the one definition both services use.

sts-service validates requests and builds responses with these models; stream-worker builds
requests and validates responses with them. The JSON Schema in specs/002-sts-contract.md is
generated from here (see `contract_json_schema`), and a test fails when the two disagree.
Regenerate it with `python -m shared_utils.contract_cli --write-spec specs/002-sts-contract.md`.
"""

from __future__ import annotations

import base64
import json
from enum import Enum
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from shared_audio import SUPPORTED_CHANNELS, SUPPORTED_SAMPLE_RATES, AudioFormat, SampleEncoding
from shared_audio.pcm import check_frames

#: The wire's sample type: 16-bit signed little-endian (a no-op view on little-endian machines).
_WIRE_INT16 = np.dtype("<i2")


def _integral_float_to_int(value: object) -> object:
    """``510511.0`` as the integer 510511; anything else unchanged, for the strict check.

    JSON has one number type, and JSON Schema's ``"integer"`` matches any number without a
    fractional part, so a client generated from the schema may send one.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A strict integer (no strings, no booleans) that also takes an integral JSON float.
JsonInt = Annotated[int, BeforeValidator(_integral_float_to_int)]

#: Bumped on any change to the models below: the minor for an optional addition an older
#: peer may ignore (1.1: `ProcessRequest.previous_text`; 1.2: `ProcessRequest.context_audio`),
#: the major for an incompatible one.
CONTRACT_VERSION = "1.2"

#: Longest `previous_text`: whisper reads at most 224 prompt tokens, about 1000 characters.
MAX_PREVIOUS_TEXT_CHARS = 1000
#: Longest `context_audio`: enough for the words a hard cut split, and a bound on what a
#: request may add to the fragment it carries.
MAX_CONTEXT_MS = 3000

#: HTTP routes of the contract (the only place they are spelled).
HEALTH_PATH = "/v1/health"
PROCESS_PATH = "/v1/process"

#: Where sts-service listens by default, and so where stream-worker looks for it by default.
#: The only place the default port and URL are spelled in code; compose, .env.example and the
#: docs are checked against these by the scaffold's configuration test.
DEFAULT_STS_HOST = "127.0.0.1"
DEFAULT_STS_PORT = 8000
DEFAULT_STS_URL = f"http://{DEFAULT_STS_HOST}:{DEFAULT_STS_PORT}"

DEFAULT_TIMEOUT_MS = 8000
MIN_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 30000

#: The largest sequence number: the largest integer every JSON parser holds exactly (2**53 - 1).
MAX_SEQUENCE_NUMBER = 2**53 - 1

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"

# Canonical base64 (RFC 4648 section 4): the standard alphabet in groups of 4 characters, "="
# only as the final padding, and zero padding bits, so every byte string has exactly one
# encoding. A group ending "x==" carries 1 byte: its last letter has 4 zero bits (A, Q, g, w).
# A group ending "xy=" carries 2 bytes: its last letter has 2 zero bits.
_B64 = "[A-Za-z0-9+/]"
_ONE_BYTE_END = f"{_B64}[AQgw]=="
_TWO_BYTES_END = f"{_B64}{{2}}[AEIMQUYcgkosw048]="
#: The JSON Schema pattern of `AudioPayload.data_base64`, also what the server validates.
BASE64_PATTERN = f"^(?:{_B64}{{4}})*(?:{_ONE_BYTE_END}|{_TWO_BYTES_END})?$"
#: Canonical base64 of whole frames, by channel count: a whole number of 2-byte frames is
#: 6-byte blocks (8 characters) plus 0, 2 or 4 bytes; of 4-byte frames, 12-byte blocks
#: (16 characters) plus 0, 4 or 8 bytes. The schema applies them per `channels`.
FRAMES_PATTERNS: dict[int, str] = {
    1: f"^(?:{_B64}{{8}})*(?:{_TWO_BYTES_END}|{_B64}{{4}}{_ONE_BYTE_END})?$",
    2: f"^(?:{_B64}{{16}})*(?:{_B64}{{4}}{_ONE_BYTE_END}|{_B64}{{8}}{_TWO_BYTES_END})?$",
}
_BAD_BASE64 = (
    "data_base64 is not valid base64: use the standard alphabet (A-Z a-z 0-9 + /), "
    "padded with '=' to a multiple of 4 characters, with no whitespace"
)


class _Model(BaseModel):
    """Base for contract models: unknown fields are rejected, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AudioPayload(_Model):
    """Raw PCM S16LE audio, base64-encoded, with the format needed to decode it."""

    model_config = ConfigDict(
        json_schema_extra={
            # Whole frames, in the schema too: a client built from it cannot send half a frame.
            "allOf": [
                {
                    "if": {"properties": {"channels": {"const": channels}}},
                    "then": {"properties": {"data_base64": {"pattern": pattern}}},
                }
                for channels, pattern in FRAMES_PATTERNS.items()
            ]
        }
    )

    encoding: Literal["pcm_s16le"] = Field(
        default="pcm_s16le", description="Sample encoding: signed 16-bit little-endian PCM."
    )
    sample_rate_hz: JsonInt = Field(
        strict=True,
        description="Sample rate in Hz.",
        examples=[16000],
        json_schema_extra={"enum": [*sorted(SUPPORTED_SAMPLE_RATES)]},
    )
    channels: JsonInt = Field(
        strict=True,
        description="Interleaved channel count.",
        examples=[1],
        json_schema_extra={"enum": [*sorted(SUPPORTED_CHANNELS)]},
    )
    data_base64: str = Field(
        pattern=BASE64_PATTERN,
        description="Canonical base64 (RFC 4648, padded) of whole interleaved PCM frames.",
        json_schema_extra={"contentEncoding": "base64"},
    )

    @field_validator("sample_rate_hz")
    @classmethod
    def _check_rate(cls, value: int) -> int:
        if value not in SUPPORTED_SAMPLE_RATES:
            raise ValueError(
                f"sample rate {value} Hz is not supported; "
                f"use one of {sorted(SUPPORTED_SAMPLE_RATES)}"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, value: int) -> int:
        if value not in SUPPORTED_CHANNELS:
            raise ValueError(
                f"channel count {value} is not supported; use one of {sorted(SUPPORTED_CHANNELS)}"
            )
        return value

    @field_validator("data_base64", mode="wrap")
    @classmethod
    def _check_base64(cls, value: object, handler: ValidatorFunctionWrapHandler) -> str:
        # The pattern alone validates (the same one the schema gives), so a clear message
        # replaces pydantic's, which would quote the whole regular expression.
        try:
            return str(handler(value))
        except ValidationError as exc:
            if any(error["type"] == "string_pattern_mismatch" for error in exc.errors()):
                raise ValueError(_BAD_BASE64) from None
            raise

    @model_validator(mode="after")
    def _check_whole_frames(self) -> AudioPayload:
        frame_bytes = 2 * self.channels
        size = self.byte_count()
        if size % frame_bytes:
            raise ValueError(
                f"audio has {size} bytes, not a whole number of {frame_bytes}-byte frames "
                f"({self.channels} channel(s) of 16-bit samples)"
            )
        return self

    @classmethod
    def from_pcm(cls, pcm: bytes, audio_format: AudioFormat) -> AudioPayload:
        """Wrap raw PCM S16LE bytes in a payload.

        Raises:
            ValueError: if the format is not S16LE or the bytes are not whole frames.
        """
        if audio_format.encoding is not SampleEncoding.S16LE:
            raise ValueError("the wire contract carries PCM S16LE only")
        return cls(
            sample_rate_hz=audio_format.sample_rate,
            channels=audio_format.channels,
            data_base64=base64.b64encode(pcm).decode("ascii"),
        )

    @classmethod
    def from_samples(
        cls, samples: npt.NDArray[np.int16], audio_format: AudioFormat
    ) -> AudioPayload:
        """int16 ``(frames, channels)`` samples (1-D for mono) as a payload, in one step.

        Base64 of the samples' own buffer: the sending side's one conversion (no
        intermediate ``bytes``). It is not validated
        again, so that each payload is checked once, by its receiver: an `AudioFormat` is a
        supported S16LE rate and channel count, the shape check makes whole frames and
        `base64.b64encode` writes canonical base64.

        Raises:
            ValueError: if the format is not S16LE, or the samples are not int16 shaped
                ``(frames, audio_format.channels)`` (or 1-D for mono).
        """
        if audio_format.encoding is not SampleEncoding.S16LE:
            raise ValueError("the wire contract carries PCM S16LE only")
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
            what = getattr(samples, "dtype", type(samples).__name__)
            raise ValueError(f"audio samples must be int16, got {what}")
        check_frames(samples, audio_format.channels, allow_1d=audio_format.channels == 1)
        wire = np.ascontiguousarray(samples, dtype=_WIRE_INT16)
        return cls.model_construct(
            sample_rate_hz=audio_format.sample_rate,
            channels=audio_format.channels,
            data_base64=base64.b64encode(wire.data).decode("ascii"),
        )

    def samples(self) -> npt.NDArray[np.int16]:
        """The int16 ``(frames, channels)`` samples: the receiving side's one conversion.

        A read-only view on the decoded bytes (no second copy). Whole frames are known from
        validation.
        """
        wire = np.frombuffer(base64.b64decode(self.data_base64), dtype=_WIRE_INT16)
        native: npt.NDArray[np.int16] = wire.astype(np.int16, copy=False).reshape(-1, self.channels)
        return native

    def byte_count(self) -> int:
        """Number of PCM bytes, from the base64 length alone (no decoding).

        Exact because `data_base64` matched `BASE64_PATTERN`: canonical padding, no
        whitespace. Decoding costs ~0.2 ms per second of 16 kHz audio; validation needs only
        the size.
        """
        text = self.data_base64
        return len(text) // 4 * 3 - (len(text) - len(text.rstrip("=")))

    def pcm_bytes(self) -> bytes:
        """The decoded PCM bytes."""
        return base64.b64decode(self.data_base64)

    def audio_format(self) -> AudioFormat:
        """The shared_audio format of this payload."""
        return AudioFormat(self.sample_rate_hz, self.channels, SampleEncoding.S16LE)

    def frame_count(self) -> int:
        """Number of frames in the payload."""
        return self.byte_count() // (2 * self.channels)


class ProcessConfig(_Model):
    """What to do with a fragment: languages and an optional voice."""

    source_language: str = Field(pattern=_LANGUAGE_PATTERN, examples=["en"])
    target_language: str = Field(pattern=_LANGUAGE_PATTERN, examples=["es"])
    voice: str | None = Field(default=None, max_length=64, description="Backend-specific voice.")


class ProcessRequest(_Model):
    """`POST /v1/process` body: one audio fragment of one stream."""

    fragment_id: str = Field(pattern=_ID_PATTERN, description="Unique per fragment.")
    stream_id: str = Field(pattern=_ID_PATTERN)
    sequence_number: JsonInt = Field(
        ge=0,
        le=MAX_SEQUENCE_NUMBER,
        strict=True,
        description="Position of the fragment in its stream.",
    )
    audio: AudioPayload
    config: ProcessConfig
    timeout_ms: JsonInt = Field(
        default=DEFAULT_TIMEOUT_MS,
        ge=MIN_TIMEOUT_MS,
        le=MAX_TIMEOUT_MS,
        strict=True,
        description="Deadline for the whole pipeline; past it the answer is status=timeout.",
    )
    previous_text: str | None = Field(
        default=None,
        # Left out of the JSON when absent: a 1.0 service rejects any field it does not know,
        # even a null one, so a request without context is exactly a 1.0 request.
        exclude_if=lambda value: value is None,
        max_length=MAX_PREVIOUS_TEXT_CHARS,
        description="Since 1.1: the transcript of the stream's previous speech fragment, as "
        "context for ASR across a cut (whisper's initial prompt).",
    )
    context_audio: AudioPayload | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, the request is a 1.1 request
        description="Since 1.2: the stream's audio just before this fragment (same rate and "
        f"channels as `audio`, at most {MAX_CONTEXT_MS} ms), which ASR hears so that a word "
        "the cut split is heard whole. The transcript, translation and dub cover `audio` only.",
    )

    @model_validator(mode="after")
    def _context_fits(self) -> ProcessRequest:
        context = self.context_audio
        if context is None:
            return self
        if (context.sample_rate_hz, context.channels) != (
            self.audio.sample_rate_hz,
            self.audio.channels,
        ):
            raise ValueError(
                f"context_audio is {context.sample_rate_hz} Hz, {context.channels} channel(s); "
                f"it must match audio ({self.audio.sample_rate_hz} Hz, "
                f"{self.audio.channels} channel(s))"
            )
        longest = context.sample_rate_hz * MAX_CONTEXT_MS // 1000
        if context.frame_count() > longest:
            raise ValueError(
                f"context_audio holds {context.frame_count()} frames, more than "
                f"{MAX_CONTEXT_MS} ms ({longest} frames)"
            )
        return self


class ProcessStatus(str, Enum):
    """Outcome of one fragment."""

    SUCCESS = "success"
    PARTIAL = "partial"  # audio came back but failed a sanity check; the client decides
    FAILED = "failed"
    TIMEOUT = "timeout"


class ErrorCode(str, Enum):
    """Error codes of the contract. `retryable` follows from the code (RETRYABLE_CODES)."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_AUDIO = "INVALID_AUDIO"
    FRAGMENT_TOO_LARGE = "FRAGMENT_TOO_LARGE"
    TIMEOUT = "TIMEOUT"
    MODEL_ERROR = "MODEL_ERROR"
    QUEUE_FULL = "QUEUE_FULL"
    RATE_LIMIT = "RATE_LIMIT"

    @property
    def retryable(self) -> bool:
        """Whether a client may retry a fragment that failed with this code."""
        return self in RETRYABLE_CODES


RETRYABLE_CODES: frozenset[ErrorCode] = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.MODEL_ERROR, ErrorCode.QUEUE_FULL, ErrorCode.RATE_LIMIT}
)

Stage = Literal["request", "asr", "translation", "tts", "pipeline"]


class ErrorInfo(_Model):
    """A structured error: what failed, where, and whether a retry may help."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"code": {"enum": [*sorted(c.value for c in RETRYABLE_CODES)]}}},
            "then": {"properties": {"retryable": {"const": True}}},
            "else": {"properties": {"retryable": {"const": False}}},
        }
    )

    code: ErrorCode
    message: str = Field(min_length=1)
    stage: Stage | None = None
    retryable: bool = Field(strict=True)

    @model_validator(mode="after")
    def _retryable_matches_code(self) -> ErrorInfo:
        if self.retryable != self.code.retryable:
            raise ValueError(f"retryable must be {self.code.retryable} for code {self.code.value}")
        return self

    @classmethod
    def of(cls, code: ErrorCode, message: str, stage: Stage | None = None) -> ErrorInfo:
        """Build an error whose `retryable` flag follows from its code."""
        return cls(code=code, message=message, stage=stage, retryable=code.retryable)


class StageTimings(_Model):
    """Milliseconds spent in each pipeline stage (0 for a stage that did not run)."""

    asr_ms: float = Field(default=0.0, ge=0, strict=True, allow_inf_nan=False)
    translation_ms: float = Field(default=0.0, ge=0, strict=True, allow_inf_nan=False)
    tts_ms: float = Field(default=0.0, ge=0, strict=True, allow_inf_nan=False)


class ProcessResponse(_Model):
    """`POST /v1/process` answer for one fragment."""

    model_config = ConfigDict(
        json_schema_extra={
            # What _status_matches_fields checks, so that the schema accepts no less.
            "allOf": [
                {
                    "if": {"properties": {"status": {"const": ProcessStatus.SUCCESS.value}}},
                    "then": {
                        "required": ["audio"],
                        "properties": {
                            "audio": {"not": {"type": "null"}},
                            "error": {"type": "null"},
                        },
                    },
                },
                {
                    "if": {
                        "properties": {
                            "status": {
                                "enum": [
                                    status.value
                                    for status in ProcessStatus
                                    if status is not ProcessStatus.SUCCESS
                                ]
                            }
                        }
                    },
                    "then": {
                        "required": ["error"],
                        "properties": {"error": {"not": {"type": "null"}}},
                    },
                },
            ]
        }
    )

    fragment_id: str
    stream_id: str
    sequence_number: JsonInt = Field(ge=0, le=MAX_SEQUENCE_NUMBER, strict=True)
    status: ProcessStatus
    audio: AudioPayload | None = Field(
        default=None, description="Dubbed audio, same format as the input. Absent on failure."
    )
    transcript: str | None = None
    translated_text: str | None = None
    processing_time_ms: float = Field(ge=0, strict=True, allow_inf_nan=False)
    stage_timings: StageTimings = Field(default_factory=StageTimings)
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _status_matches_fields(self) -> ProcessResponse:
        if self.status is ProcessStatus.SUCCESS and (self.audio is None or self.error):
            raise ValueError("status=success needs audio and no error")
        if self.status in (ProcessStatus.FAILED, ProcessStatus.TIMEOUT) and self.error is None:
            raise ValueError(f"status={self.status.value} needs an error")
        if self.status is ProcessStatus.PARTIAL and self.error is None:
            raise ValueError("status=partial needs an error saying what is wrong")
        return self


class HealthStatus(str, Enum):
    """Overall service health: loading its models, then healthy, or degraded (see backends)."""

    LOADING = "loading"
    HEALTHY = "healthy"
    DEGRADED = "degraded"


class BackendHealth(_Model):
    """One loaded pipeline backend and whether it can serve."""

    stage: Literal["asr", "translation", "tts"]
    name: str
    available: bool = Field(strict=True)
    detail: str | None = None


class HealthResponse(_Model):
    """`GET /v1/health` answer. version + git_revision reveal which code is running."""

    status: HealthStatus
    service: str
    version: str
    git_revision: str
    contract_version: str = CONTRACT_VERSION
    uptime_s: float = Field(ge=0, strict=True, allow_inf_nan=False)
    backends: list[BackendHealth]


class ErrorResponse(_Model):
    """Body of every 4xx answer: the error names the field or problem."""

    error: ErrorInfo


#: Every model that crosses the wire, by the name used in the JSON Schema.
CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    "ProcessRequest": ProcessRequest,
    "ProcessResponse": ProcessResponse,
    "HealthResponse": HealthResponse,
    "ErrorResponse": ErrorResponse,
}


def contract_json_schema() -> dict[str, Any]:
    """The JSON Schema of every contract model, as written to specs/002-sts-contract.md."""
    from pydantic.json_schema import models_json_schema

    _, schema = models_json_schema(
        [(model, "validation") for model in CONTRACT_MODELS.values()],
        title=f"STS wire contract {CONTRACT_VERSION}",
    )
    return schema


def contract_json_schema_text() -> str:
    """`contract_json_schema()` as stable, pretty-printed JSON."""
    return json.dumps(contract_json_schema(), indent=2, sort_keys=True) + "\n"
