from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from shared_audio import AudioFormat, SampleEncoding
from shared_utils import (
    DEFAULT_STS_URL,
    DEFAULT_TIMEOUT_MS,
    HEALTH_PATH,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    PROCESS_PATH,
    RETRYABLE_CODES,
    AudioPayload,
    ErrorCode,
    ErrorInfo,
    ErrorResponse,
    HealthResponse,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
    StageTimings,
)
from shared_utils.contract import (
    BASE64_PATTERN,
    FRAMES_PATTERNS,
    MAX_SEQUENCE_NUMBER,
    contract_json_schema,
)

PCM = b"\x00\x00\x10\x00\xf0\xff\x00\x01"  # 4 mono frames


def audio_dict(**overrides: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "encoding": "pcm_s16le",
        "sample_rate_hz": 16000,
        "channels": 1,
        "data_base64": base64.b64encode(PCM).decode(),
    }
    data.update(overrides)
    return data


def request_dict(**overrides: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "fragment_id": "s1:0001",
        "stream_id": "s1",
        "sequence_number": 1,
        "audio": audio_dict(),
        "config": {"source_language": "en", "target_language": "es"},
    }
    data.update(overrides)
    return data


def response_dict(**overrides: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "fragment_id": "s1:0001",
        "stream_id": "s1",
        "sequence_number": 1,
        "status": "success",
        "audio": audio_dict(),
        "processing_time_ms": 12.5,
    }
    data.update(overrides)
    return data


def error_dict(
    code: str = "MODEL_ERROR", retryable: bool = True, **extra: object
) -> dict[str, Any]:
    return {"code": code, "message": "backend failed", "retryable": retryable, **extra}


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(e["loc"]), str(e["msg"])) for e in exc.value.errors()]


# ------------------------------------------------------------------------------ constants


def test_routes_and_defaults() -> None:
    assert HEALTH_PATH == "/v1/health"
    assert PROCESS_PATH == "/v1/process"
    assert DEFAULT_STS_URL == "http://127.0.0.1:8000"
    assert (MIN_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS) == (1000, 8000, 30000)


def test_only_transient_failures_are_retryable() -> None:
    assert {c.value for c in RETRYABLE_CODES} == {
        "TIMEOUT",
        "MODEL_ERROR",
        "QUEUE_FULL",
        "RATE_LIMIT",
    }
    assert not ErrorCode.INVALID_REQUEST.retryable
    assert not ErrorCode.INVALID_AUDIO.retryable
    assert not ErrorCode.FRAGMENT_TOO_LARGE.retryable
    assert ErrorCode.TIMEOUT.retryable


# -------------------------------------------------------------------------------- request


def test_valid_request_parses_with_defaults() -> None:
    request = ProcessRequest.model_validate(request_dict())
    assert request.timeout_ms == DEFAULT_TIMEOUT_MS
    assert request.config.voice is None
    assert request.previous_text is None  # 1.1's addition is optional: 1.0 requests still parse
    assert request.audio.pcm_bytes() == PCM
    assert request.audio.frame_count() == 4


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"fragment_id": ""}, ("fragment_id",)),
        ({"fragment_id": "-starts-with-dash"}, ("fragment_id",)),
        ({"fragment_id": "has space"}, ("fragment_id",)),
        ({"fragment_id": "x" * 129}, ("fragment_id",)),
        ({"stream_id": "a/b"}, ("stream_id",)),
        ({"sequence_number": -1}, ("sequence_number",)),
        ({"sequence_number": True}, ("sequence_number",)),
        ({"sequence_number": "3"}, ("sequence_number",)),
        ({"sequence_number": MAX_SEQUENCE_NUMBER + 1}, ("sequence_number",)),
        ({"sequence_number": int("9" * 4001)}, ("sequence_number",)),
        ({"timeout_ms": MIN_TIMEOUT_MS - 1}, ("timeout_ms",)),
        ({"timeout_ms": MAX_TIMEOUT_MS + 1}, ("timeout_ms",)),
        ({"timeout_ms": 2000.5}, ("timeout_ms",)),
        (
            {"config": {"source_language": "EN", "target_language": "es"}},
            ("config", "source_language"),
        ),
        (
            {"config": {"source_language": "en", "target_language": "e"}},
            ("config", "target_language"),
        ),
        (
            {"config": {"source_language": "en", "target_language": "es", "voice": "v" * 65}},
            ("config", "voice"),
        ),
        ({"config": {"source_language": "en"}}, ("config", "target_language")),
        ({"unexpected": 1}, ("unexpected",)),
        ({"audio": None}, ("audio",)),
        ({"previous_text": "x" * 1001}, ("previous_text",)),
        ({"previous_text": 3}, ("previous_text",)),
    ],
)
def test_invalid_request_fields_are_located(
    overrides: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        ProcessRequest.model_validate(request_dict(**overrides))
    assert loc in [e[0] for e in errors_of(info)]


def test_previous_text_is_carried() -> None:
    request = ProcessRequest.model_validate(request_dict(previous_text="Good evening."))
    assert request.previous_text == "Good evening."
    assert json.loads(request.model_dump_json())["previous_text"] == "Good evening."


def test_context_audio_is_carried() -> None:
    request = ProcessRequest.model_validate(request_dict(context_audio=audio_dict()))
    assert request.context_audio is not None
    assert request.context_audio.pcm_bytes() == PCM
    assert json.loads(request.model_dump_json())["context_audio"] == audio_dict()


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            audio_dict(sample_rate_hz=48000),
            "context_audio is 48000 Hz, 1 channel(s); it must match",
        ),
        (audio_dict(channels=2), "context_audio is 16000 Hz, 2 channel(s); it must match"),
        (
            audio_dict(data_base64=base64.b64encode(b"\0\0" * 48001).decode()),
            "context_audio holds 48001 frames, more than 3000 ms (48000 frames)",
        ),
    ],
)
def test_context_audio_must_fit_the_fragment(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ProcessRequest.model_validate(request_dict(context_audio=context))


def test_a_request_without_context_is_a_1_0_request() -> None:
    # A 1.0 service rejects unknown fields, null ones too: absent context is left out.
    body = json.loads(ProcessRequest.model_validate(request_dict()).model_dump_json())
    fields_of_1_0 = {"fragment_id", "stream_id", "sequence_number", "audio", "config", "timeout_ms"}
    assert set(body) == fields_of_1_0


@pytest.mark.parametrize("timeout_ms", [MIN_TIMEOUT_MS, MAX_TIMEOUT_MS])
def test_timeout_bounds_are_inclusive(timeout_ms: int) -> None:
    assert (
        ProcessRequest.model_validate(request_dict(timeout_ms=timeout_ms)).timeout_ms == timeout_ms
    )


def test_language_tags_with_regions_are_accepted() -> None:
    config = {"source_language": "pt-BR", "target_language": "zh-Hant-TW"}
    assert (
        ProcessRequest.model_validate(request_dict(config=config)).config.source_language == "pt-BR"
    )


def test_missing_required_fields_are_all_reported() -> None:
    with pytest.raises(ValidationError) as info:
        ProcessRequest.model_validate({})
    missing = {e[0][0] for e in errors_of(info)}
    assert missing == {"fragment_id", "stream_id", "sequence_number", "audio", "config"}


def test_models_are_frozen() -> None:
    request = ProcessRequest.model_validate(request_dict())
    with pytest.raises(ValidationError):
        request.sequence_number = 2  # type: ignore[misc]  # frozen on purpose


# ---------------------------------------------------------------------------------- audio


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        "AAA",  # missing padding
        "0/0",  # missing padding (found by a fuzzer driven by the schema)
        "AAAA\n",  # whitespace
        "-_-_",  # URL-safe alphabet
        "AAAA=",  # excess padding: used to pass, then miscount the bytes (a 500)
        "AAAA====",
        "AA=A",  # padding inside
        "AB==",  # non-zero padding bits: a second encoding of the same byte
        "AAB=",
    ],
)
def test_non_canonical_base64_is_rejected(data: str) -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(data_base64=data))
    ((loc, message),) = errors_of(info)
    assert loc == ("data_base64",)
    assert message.startswith("Value error, data_base64 is not valid base64: use the standard")


def test_a_non_string_data_base64_keeps_pydantic_s_message() -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(data_base64=12))
    assert [(("data_base64",), "Input should be a valid string")] == errors_of(info)


def _accepted(channels: int, text: str) -> bool:
    try:
        AudioPayload.model_validate(audio_dict(channels=channels, data_base64=text))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("size", range(0, 40))
def test_schema_patterns_accept_exactly_what_the_models_accept(size: int, channels: int) -> None:
    """The schema's base64 and whole-frame patterns agree with the validators."""
    for pcm in (b"\x00" * size, bytes(range(256))[:size], b"\xff" * size):
        text = base64.b64encode(pcm).decode()
        assert re.fullmatch(BASE64_PATTERN, text)
        assert _accepted(channels, text) is (size % (2 * channels) == 0)
        for candidate in (text, text + "=", text + "====", text[:-1], "A" + text, text + "A"):
            in_schema = bool(re.fullmatch(FRAMES_PATTERNS[channels], candidate))
            assert in_schema is _accepted(channels, candidate), candidate
        assert not re.fullmatch(BASE64_PATTERN, text + "=")


def test_partial_frame_is_rejected_with_byte_count() -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(
            audio_dict(data_base64=base64.b64encode(b"\x00\x01\x02").decode())
        )
    ((loc, message),) = errors_of(info)
    assert loc == ()
    assert "audio has 3 bytes, not a whole number of 2-byte frames" in message


def test_partial_stereo_frame_is_rejected() -> None:
    six_bytes = base64.b64encode(b"\x00" * 6).decode()
    with pytest.raises(ValidationError, match="6 bytes, not a whole number of 4-byte frames"):
        AudioPayload.model_validate(audio_dict(channels=2, data_base64=six_bytes))


@pytest.mark.parametrize("rate", [0, 11025, 96000, -16000])
def test_unsupported_rate_is_rejected(rate: int) -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(sample_rate_hz=rate))
    ((loc, message),) = errors_of(info)
    assert loc == ("sample_rate_hz",)
    assert f"sample rate {rate} Hz is not supported" in message


@pytest.mark.parametrize("channels", [0, 3, 6])
def test_unsupported_channels_are_rejected(channels: int) -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(channels=channels))
    ((loc, message),) = errors_of(info)
    assert loc == ("channels",)
    assert f"channel count {channels} is not supported" in message


@pytest.mark.parametrize("channels", [True, "1", 1.5, float("inf"), float("nan")])
def test_channels_must_be_a_real_integer(channels: object) -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(channels=channels))
    assert errors_of(info)[0][0] == ("channels",)


def test_integral_json_floats_are_integers_as_the_schema_says() -> None:
    # JSON Schema's "integer" matches 510511.0, so an outside fuzzer sends it (ST202).
    body = json.dumps(
        {
            "fragment_id": "f",
            "stream_id": "s",
            "sequence_number": 510511.0,
            "audio": audio_dict(sample_rate_hz=16000.0, channels=1.0),
            "config": {"source_language": "en", "target_language": "es"},
            "timeout_ms": 8000.0,
        }
    )
    request = ProcessRequest.model_validate_json(body)
    assert request.sequence_number == 510511 and type(request.sequence_number) is int
    assert type(request.timeout_ms) is int and request.timeout_ms == 8000
    assert (request.audio.sample_rate_hz, request.audio.channels) == (16000, 1)
    assert type(request.audio.channels) is int


def test_json_booleans_are_not_integers() -> None:
    body = '{"encoding": "pcm_s16le", "sample_rate_hz": 16000, "channels": true, "data_base64": ""}'
    with pytest.raises(ValidationError):
        AudioPayload.model_validate_json(body)


def test_unsupported_encoding_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        AudioPayload.model_validate(audio_dict(encoding="pcm_f32le"))
    assert errors_of(info)[0][0] == ("encoding",)


def test_from_pcm_and_pcm_bytes_round_trip() -> None:
    fmt = AudioFormat(48000, 2)
    pcm = bytes(range(256)) * 4  # 1024 bytes = 256 stereo frames
    payload = AudioPayload.from_pcm(pcm, fmt)
    assert payload.sample_rate_hz == 48000
    assert payload.channels == 2
    assert payload.encoding == "pcm_s16le"
    assert payload.pcm_bytes() == pcm
    assert payload.audio_format() == fmt
    assert payload.frame_count() == 256


def test_from_pcm_rejects_float_encoding() -> None:
    with pytest.raises(ValueError, match="PCM S16LE only"):
        AudioPayload.from_pcm(b"\x00" * 8, AudioFormat(16000, 1, SampleEncoding.F32LE))


def test_from_pcm_rejects_partial_frames() -> None:
    with pytest.raises(ValueError, match="3 bytes, not a whole number"):
        AudioPayload.from_pcm(b"\x00\x01\x02", AudioFormat(16000, 1))


@pytest.mark.parametrize("channels", [1, 2])
def test_from_samples_is_the_pcm_payload_and_samples_reads_it_back(channels: int) -> None:
    fmt = AudioFormat(16000, channels)
    samples = np.arange(-300, 300, dtype=np.int16).reshape(-1, channels)
    payload = AudioPayload.from_samples(samples, fmt)
    assert payload == AudioPayload.from_pcm(samples.astype("<i2").tobytes(), fmt)
    # What the sender skips, the receiver checks: it parses as a valid payload.
    assert AudioPayload.model_validate_json(payload.model_dump_json()) == payload
    back = payload.samples()
    assert back.dtype == np.int16 and back.shape == samples.shape
    assert np.array_equal(back, samples)


@pytest.mark.parametrize(
    ("samples", "fmt", "message"),
    [
        (np.zeros((4, 2), dtype=np.int16), AudioFormat(16000, 1), "2 channels"),
        (np.zeros((4, 1), dtype=np.float32), AudioFormat(16000, 1), "must be int16"),
        (np.zeros((4, 1), dtype=np.int16), AudioFormat(16000, 1, SampleEncoding.F32LE), "S16LE"),
    ],
)
def test_from_samples_refuses_what_is_not_whole_s16_frames_of_its_format(
    samples: np.ndarray[Any, Any], fmt: AudioFormat, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AudioPayload.from_samples(samples, fmt)


def test_empty_audio_is_zero_frames() -> None:
    payload = AudioPayload.from_pcm(b"", AudioFormat(16000, 1))
    assert payload.frame_count() == 0


# ------------------------------------------------------------------------------- response


def test_success_response_parses() -> None:
    response = ProcessResponse.model_validate(response_dict())
    assert response.status is ProcessStatus.SUCCESS
    assert response.stage_timings == StageTimings()
    assert response.error is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"audio": None}, "status=success needs audio and no error"),
        ({"error": error_dict()}, "status=success needs audio and no error"),
        ({"status": "failed"}, "status=failed needs an error"),
        ({"status": "timeout"}, "status=timeout needs an error"),
        ({"status": "partial"}, "status=partial needs an error saying what is wrong"),
    ],
)
def test_status_and_error_must_agree(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProcessResponse.model_validate(response_dict(**overrides))


@pytest.mark.parametrize("status", ["failed", "timeout", "partial"])
def test_non_success_statuses_with_an_error_parse(status: str) -> None:
    code = "TIMEOUT" if status == "timeout" else "MODEL_ERROR"
    response = ProcessResponse.model_validate(
        response_dict(status=status, audio=None, error=error_dict(code))
    )
    assert response.error is not None
    assert response.error.retryable


def test_partial_may_carry_audio() -> None:
    response = ProcessResponse.model_validate(response_dict(status="partial", error=error_dict()))
    assert response.audio is not None


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"status": "done"}, ("status",)),
        ({"processing_time_ms": -1.0}, ("processing_time_ms",)),
        ({"processing_time_ms": float("inf")}, ("processing_time_ms",)),
        ({"processing_time_ms": float("nan")}, ("processing_time_ms",)),
        ({"processing_time_ms": "12"}, ("processing_time_ms",)),
        ({"stage_timings": {"asr_ms": -0.1}}, ("stage_timings", "asr_ms")),
        ({"stage_timings": {"tts_ms": float("inf")}}, ("stage_timings", "tts_ms")),
        ({"stage_timings": {"gpu_ms": 1.0}}, ("stage_timings", "gpu_ms")),
        ({"sequence_number": -5}, ("sequence_number",)),
    ],
)
def test_invalid_response_fields_are_located(
    overrides: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        ProcessResponse.model_validate(response_dict(**overrides))
    assert loc in [e[0] for e in errors_of(info)]


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_of_sets_retryable_from_code(code: ErrorCode) -> None:
    error = ErrorInfo.of(code, "m", "asr")
    assert error.retryable is code.retryable
    assert error.stage == "asr"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_retryable_mismatch_is_rejected(code: ErrorCode) -> None:
    with pytest.raises(ValidationError, match=f"retryable must be {code.retryable} for code"):
        ErrorInfo(code=code, message="m", retryable=not code.retryable)


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"code": "NOPE", "message": "m", "retryable": False}, ("code",)),
        ({"code": "TIMEOUT", "message": "", "retryable": True}, ("message",)),
        ({"code": "TIMEOUT", "message": "m", "retryable": 1}, ("retryable",)),
        ({"code": "TIMEOUT", "message": "m", "retryable": True, "stage": "gpu"}, ("stage",)),
        ({"code": "TIMEOUT", "message": "m"}, ("retryable",)),
    ],
)
def test_invalid_error_fields_are_located(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        ErrorInfo.model_validate(data)
    assert loc in [e[0] for e in errors_of(info)]


def test_error_response_wraps_error_info() -> None:
    body = ErrorResponse(error=ErrorInfo.of(ErrorCode.QUEUE_FULL, "too many in flight"))
    assert body.model_dump(mode="json") == {
        "error": {
            "code": "QUEUE_FULL",
            "message": "too many in flight",
            "stage": None,
            "retryable": True,
        }
    }


# ---------------------------------------------------------------------------------- health


def health_dict(**overrides: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": "healthy",
        "service": "sts-service",
        "version": "0.1.0",
        "git_revision": "abc1234",
        "uptime_s": 1.5,
        "backends": [{"stage": "asr", "name": "echo", "available": True}],
    }
    data.update(overrides)
    return data


def test_health_parses_with_contract_version_default() -> None:
    health = HealthResponse.model_validate(health_dict())
    assert health.contract_version == "1.2"
    assert health.backends[0].detail is None


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"status": "ok"}, ("status",)),
        ({"uptime_s": -1}, ("uptime_s",)),
        (
            {"backends": [{"stage": "gpu", "name": "x", "available": True}]},
            ("backends", 0, "stage"),
        ),
        (
            {"backends": [{"stage": "asr", "name": "x", "available": "yes"}]},
            ("backends", 0, "available"),
        ),
        ({"git_revision": None}, ("git_revision",)),
    ],
)
def test_invalid_health_fields_are_located(overrides: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        HealthResponse.model_validate(health_dict(**overrides))
    assert loc in [e[0] for e in errors_of(info)]


def test_every_integer_of_the_contract_is_bounded_in_the_schema() -> None:
    """Each integer field has a minimum and a maximum, or an enumeration, in the schema."""
    definitions = contract_json_schema()["$defs"]
    integers = [
        (model, name, field)
        for model, schema in definitions.items()
        for name, field in schema.get("properties", {}).items()
        if field.get("type") == "integer"
    ]
    assert {(model, name) for model, name, _ in integers} >= {
        ("ProcessRequest", "sequence_number"),
        ("ProcessResponse", "sequence_number"),
        ("ProcessRequest", "timeout_ms"),
        ("AudioPayload", "sample_rate_hz"),
        ("AudioPayload", "channels"),
    }
    for model, name, field in integers:
        bounded = "enum" in field or ("minimum" in field and "maximum" in field)
        assert bounded, f"{model}.{name} is unbounded in the schema: {field}"
    assert definitions["ProcessRequest"]["properties"]["sequence_number"]["maximum"] == (
        MAX_SEQUENCE_NUMBER
    )


def test_the_schema_states_the_rules_the_models_check_across_fields() -> None:
    definitions = contract_json_schema()["$defs"]
    audio = definitions["AudioPayload"]
    assert audio["properties"]["data_base64"]["pattern"] == BASE64_PATTERN
    assert [rule["then"]["properties"]["data_base64"]["pattern"] for rule in audio["allOf"]] == [
        FRAMES_PATTERNS[1],
        FRAMES_PATTERNS[2],
    ]
    error = definitions["ErrorInfo"]
    assert set(error["if"]["properties"]["code"]["enum"]) == {c.value for c in RETRYABLE_CODES}
    statuses = definitions["ProcessResponse"]["allOf"]
    assert statuses[0]["then"]["properties"]["error"] == {"type": "null"}
    assert set(statuses[1]["if"]["properties"]["status"]["enum"]) == {
        "partial",
        "failed",
        "timeout",
    }
