from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared_utils.contract import DEFAULT_STS_HOST, DEFAULT_STS_PORT, ErrorCode
from shared_utils.settings import SettingsError, load_settings
from sts_service.config import StsSettings

PACKAGE = Path(__file__).resolve().parents[2]

EXPECTED = [
    # Inherited from FaultSettings and EngineOptions, so listed first.
    "STS_FAULT_ENABLED",
    "STS_FAULT_LATENCY_MS",
    "STS_FAULT_FAIL_RATE",
    "STS_FAULT_FAIL_SEQUENCES",
    "STS_FAULT_ERROR_CODE",
    "STS_FAULT_LENGTH_FACTOR",
    "STS_FAULT_SEED",
    "STS_STAGE_CONCURRENCY",
    "STS_STAGE_QUEUE",
    "STS_WHISPER_MODEL",
    "STS_WHISPER_CACHE_DIR",
    "STS_WHISPER_DEVICE",
    "STS_WHISPER_COMPUTE_TYPE",
    "STS_WHISPER_THREADS",
    "STS_WHISPER_BEAM_SIZE",
    "STS_WHISPER_NO_SPEECH_THRESHOLD",
    "STS_WHISPER_LOG_PROB_THRESHOLD",
    "STS_WHISPER_COMPRESSION_RATIO_THRESHOLD",
    "STS_APERTIUM_MODES_DIR",
    "STS_APERTIUM_TIMEOUT_MS",
    "STS_APERTIUM_PRELOAD",
    "STS_GLOSSARY_DIR",
    "STS_HOST",
    "STS_PORT",
    "STS_LOG_LEVEL",
    "STS_LOG_FORMAT",
    "STS_RELOAD",
    "STS_ASR_BACKEND",
    "STS_TRANSLATION_BACKEND",
    "STS_TTS_BACKEND",
    "STS_MAX_BODY_BYTES",
    "STS_MAX_INFLIGHT",
    "STS_MAX_RECEIVING",
    "STS_BODY_TIMEOUT_S",
    "STS_MAX_HEADER_BYTES",
    "STS_HEADER_TIMEOUT_S",
    "STS_KEEP_ALIVE_TIMEOUT_S",
    "STS_MAX_CONNECTIONS",
    "STS_AUTH_TOKENS",
]


def test_settings_read_exactly_the_documented_variables() -> None:
    assert StsSettings.env_vars() == EXPECTED


def test_readme_settings_table_matches_the_settings_class() -> None:
    readme = (PACKAGE / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `(STS_[A-Z_]+)` \|", readme, flags=re.MULTILINE)
    assert documented == StsSettings.env_vars()


def test_defaults_work_with_no_configuration() -> None:
    settings = load_settings(StsSettings)
    assert (settings.host, settings.port) == (DEFAULT_STS_HOST, DEFAULT_STS_PORT)
    assert settings.log_level == "INFO" and settings.log_format == "auto"
    assert not settings.reload
    assert (settings.asr_backend, settings.translation_backend, settings.tts_backend) == (
        "echo",
        "echo",
        "echo",
    )
    assert settings.max_body_bytes == 10_000_000
    assert settings.max_inflight == 32
    assert settings.fault_config() is None


def test_fault_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_FAULT_ENABLED", "true")
    monkeypatch.setenv("STS_FAULT_LATENCY_MS", "150")
    monkeypatch.setenv("STS_FAULT_FAIL_RATE", "0.25")
    monkeypatch.setenv("STS_FAULT_FAIL_SEQUENCES", " 5, 2,,9 ")
    monkeypatch.setenv("STS_FAULT_ERROR_CODE", "invalid_audio")
    monkeypatch.setenv("STS_FAULT_LENGTH_FACTOR", "0.5")
    monkeypatch.setenv("STS_FAULT_SEED", "42")
    monkeypatch.setenv("STS_LOG_LEVEL", "debug")
    settings = load_settings(StsSettings)
    assert settings.fault_fail_sequences == frozenset({2, 5, 9})
    assert settings.log_level == "DEBUG"
    faults = settings.fault_config()
    assert faults is not None
    assert faults.fault_latency_ms == 150
    assert faults.fault_fail_rate == 0.25
    assert faults.fault_fail_sequences == frozenset({2, 5, 9})
    assert faults.fault_error_code is ErrorCode.INVALID_AUDIO
    assert faults.fault_length_factor == 0.5
    assert faults.fault_seed == 42


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STS_PORT", "abc", "STS_PORT: Input should be a valid integer"),
        ("STS_PORT", "0", "STS_PORT: Input should be greater than or equal to 1"),
        ("STS_PORT", "70000", "STS_PORT: Input should be less than or equal to 65535"),
        ("STS_LOG_LEVEL", "loud", "STS_LOG_LEVEL: Input should be 'DEBUG'"),
        ("STS_LOG_FORMAT", "xml", "STS_LOG_FORMAT: Input should be 'json'"),
        ("STS_ASR_BACKEND", "vosk", "unknown asr backend 'vosk'; registered: echo, whisper"),
        ("STS_TRANSLATION_BACKEND", "deepl", "unknown translation backend 'deepl'"),
        ("STS_TTS_BACKEND", "", "unknown tts backend ''"),
        ("STS_MAX_BODY_BYTES", "0", "STS_MAX_BODY_BYTES: Input should be greater than or equal"),
        ("STS_MAX_INFLIGHT", "-1", "STS_MAX_INFLIGHT: Input should be greater than or equal"),
        ("STS_FAULT_LATENCY_MS", "-5", "STS_FAULT_LATENCY_MS"),
        ("STS_FAULT_FAIL_RATE", "1.5", "STS_FAULT_FAIL_RATE: Input should be less than or equal"),
        ("STS_FAULT_FAIL_SEQUENCES", "1,x", "'x' is not a sequence number"),
        ("STS_FAULT_FAIL_SEQUENCES", "-1", "'-1' is not a sequence number"),
        ("STS_FAULT_ERROR_CODE", "OOPS", "STS_FAULT_ERROR_CODE: Input should be 'INVALID_REQUEST'"),
        ("STS_FAULT_LENGTH_FACTOR", "0", "STS_FAULT_LENGTH_FACTOR: Input should be greater than 0"),
        ("STS_PROT", "1", "STS_PROT: unknown variable (did you mean STS_PORT?)"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(StsSettings)
    message = str(raised.value)
    assert expected in message
    assert variable in message
    assert "\n" not in message


def test_fault_settings_are_declared_once_and_inherited() -> None:
    # One declaration: the settings class adds no fault field of its own, and the wrapper
    # reads the very object the settings are.
    from sts_service.backends.fault_injection import FaultSettings

    own = set(StsSettings.model_fields) - set(FaultSettings.model_fields)
    assert not any(name.startswith("fault_") for name in own)
    settings = StsSettings.model_validate({"fault_enabled": True, "fault_fail_sequences": "3, 1"})
    assert settings.fault_config() is settings
    assert settings.fault_fail_sequences == frozenset({1, 3})
