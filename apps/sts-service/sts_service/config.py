"""Settings of sts-service: every `STS_*` environment variable, validated at start-up.

The names and defaults are fixed by the project (the stream-worker and the dev loop rely on
them); `StsSettings.env_vars()` lists them and the package README documents each one.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared_utils.contract import DEFAULT_STS_HOST, DEFAULT_STS_PORT
from shared_utils.logging import LogFormat, LogLevel
from shared_utils.settings import ServiceSettings
from sts_service.backends import ASR_BACKENDS, TRANSLATION_BACKENDS, TTS_BACKENDS
from sts_service.backends.base import EngineOptions
from sts_service.backends.fault_injection import FaultSettings

#: The engines' defaults, declared once in `EngineOptions`.
_ENGINE_DEFAULTS = EngineOptions()


class StsSettings(ServiceSettings, FaultSettings):
    """Settings of sts-service, read from `STS_*` environment variables.

    Every field has a default, so the service starts with no configuration at all. The
    ``STS_FAULT_*`` fields are declared once, in `FaultSettings`, and inherited.

    Example:
        >>> StsSettings(port=9000).port
        9000
    """

    model_config = SettingsConfigDict(env_prefix="STS_")

    host: str = Field(default=DEFAULT_STS_HOST, min_length=1, description="Bind address.")
    port: int = Field(default=DEFAULT_STS_PORT, ge=1, le=65535, description="Bind port.")
    log_level: LogLevel = Field(default="INFO", description="Log level.")
    log_format: LogFormat = Field(default="auto", description="json, console or auto.")
    reload: bool = Field(default=False, description="uvicorn auto-reload (dev loop only).")

    asr_backend: str = Field(default="echo", description="ASR backend registry name.")
    translation_backend: str = Field(default="echo", description="MT backend registry name.")
    tts_backend: str = Field(default="echo", description="TTS backend registry name.")

    max_body_bytes: int = Field(
        default=10_000_000, ge=1, description="Larger request bodies get 413 before being read."
    )
    max_inflight: int = Field(
        default=32,
        ge=1,
        description="More concurrent /v1/process requests being processed get 429 QUEUE_FULL.",
    )
    max_receiving: int = Field(
        default=64,
        ge=1,
        description="More /v1/process bodies arriving at once get 429 before being read.",
    )
    body_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="A request body not complete this long after its head gets 408.",
    )
    max_header_bytes: int = Field(
        default=16384,
        ge=1024,
        description="A longer request line + headers gets 431 and the connection closes.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=3600.0,
        description="A connection whose next request head takes longer is closed.",
    )
    keep_alive_timeout_s: int = Field(
        default=5, ge=1, le=3600, description="Idle keep-alive connections close after."
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        description="Past this many open connections, requests get uvicorn's 503.",
    )

    stage_concurrency: int = Field(
        default=_ENGINE_DEFAULTS.stage_concurrency,
        ge=1,
        description="Most blocking engine calls at once per stage; more wait or get QUEUE_FULL.",
    )
    stage_queue: int = Field(
        default=_ENGINE_DEFAULTS.stage_queue,
        ge=0,
        description="Fragments that may wait for a busy engine; more: QUEUE_FULL.",
    )
    whisper_model: str = Field(
        default=_ENGINE_DEFAULTS.whisper_model,
        description="Whisper model: hub name or local directory; empty: the packaged tiny.en.",
    )
    whisper_device: str = Field(
        default=_ENGINE_DEFAULTS.whisper_device, min_length=1, description="CTranslate2 device."
    )
    whisper_compute_type: str = Field(
        default=_ENGINE_DEFAULTS.whisper_compute_type,
        min_length=1,
        description="CTranslate2 compute type.",
    )
    whisper_threads: int = Field(
        default=_ENGINE_DEFAULTS.whisper_threads, ge=1, description="CPU threads per transcription."
    )
    whisper_beam_size: int = Field(
        default=_ENGINE_DEFAULTS.whisper_beam_size, ge=1, description="Beam width (1: greedy)."
    )
    apertium_modes_dir: str = Field(
        default=_ENGINE_DEFAULTS.apertium_modes_dir,
        min_length=1,
        description="Apertium mode files.",
    )
    apertium_timeout_ms: int = Field(
        default=round(_ENGINE_DEFAULTS.apertium_timeout_s * 1000),
        ge=100,
        description="Longest one Apertium translation may take.",
    )

    auth_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated bearer tokens; empty: no token needed. Never logged.",
    )

    @field_validator("asr_backend")
    @classmethod
    def _known_asr(cls, value: str) -> str:
        return ASR_BACKENDS.check(value)

    @field_validator("translation_backend")
    @classmethod
    def _known_translation(cls, value: str) -> str:
        return TRANSLATION_BACKENDS.check(value)

    @field_validator("tts_backend")
    @classmethod
    def _known_tts(cls, value: str) -> str:
        return TTS_BACKENDS.check(value)

    def engine_options(self) -> EngineOptions:
        """The settings of the real engines."""
        return EngineOptions(
            whisper_model=self.whisper_model,
            whisper_device=self.whisper_device,
            whisper_compute_type=self.whisper_compute_type,
            whisper_threads=self.whisper_threads,
            whisper_beam_size=self.whisper_beam_size,
            apertium_modes_dir=self.apertium_modes_dir,
            apertium_timeout_s=self.apertium_timeout_ms / 1000.0,
            stage_concurrency=self.stage_concurrency,
            stage_queue=self.stage_queue,
        )

    def bearer_tokens(self) -> tuple[str, ...]:
        """The accepted bearer tokens (`STS_AUTH_TOKENS`, comma-separated); () disables auth."""
        parts = (part.strip() for part in self.auth_tokens.get_secret_value().split(","))
        return tuple(part for part in parts if part)
