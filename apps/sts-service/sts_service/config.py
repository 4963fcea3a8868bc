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


class StsSettings(ServiceSettings, EngineOptions, FaultSettings):
    """Settings of sts-service, read from `STS_*` environment variables.

    Every field has a default, so the service starts with no configuration at all. The engine
    settings are declared once, in `EngineOptions`, and the ``STS_FAULT_*`` ones in
    `FaultSettings`; both are inherited.

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

    def bearer_tokens(self) -> tuple[str, ...]:
        """The accepted bearer tokens (`STS_AUTH_TOKENS`, comma-separated); () disables auth."""
        parts = (part.strip() for part in self.auth_tokens.get_secret_value().split(","))
        return tuple(part for part in parts if part)
