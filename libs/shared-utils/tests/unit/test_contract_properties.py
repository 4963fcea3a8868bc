from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared_audio import SUPPORTED_CHANNELS, SUPPORTED_SAMPLE_RATES, AudioFormat
from shared_utils import (
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    AudioPayload,
    BackendHealth,
    ErrorCode,
    ErrorInfo,
    ErrorResponse,
    HealthResponse,
    HealthStatus,
    ProcessConfig,
    ProcessRequest,
    ProcessResponse,
    ProcessStatus,
    StageTimings,
)
from shared_utils.contract import MAX_SEQUENCE_NUMBER

FAST = settings(max_examples=60, deadline=None)

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,40}\Z")
languages = st.from_regex(r"\A[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}\Z")
millis = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
texts = st.none() | st.text(max_size=80)
stages = st.none() | st.sampled_from(["request", "asr", "translation", "tts", "pipeline"])


@st.composite
def audio_formats(draw: st.DrawFn) -> AudioFormat:
    return AudioFormat(
        draw(st.sampled_from(sorted(SUPPORTED_SAMPLE_RATES))),
        draw(st.sampled_from(sorted(SUPPORTED_CHANNELS))),
    )


@st.composite
def payloads(draw: st.DrawFn) -> tuple[AudioPayload, bytes]:
    fmt = draw(audio_formats())
    frames = draw(st.integers(min_value=0, max_value=64))
    pcm = draw(st.binary(min_size=frames * fmt.frame_bytes, max_size=frames * fmt.frame_bytes))
    return AudioPayload.from_pcm(pcm, fmt), pcm


errors = st.builds(ErrorInfo.of, st.sampled_from(list(ErrorCode)), st.text(min_size=1), stages)

requests = st.builds(
    ProcessRequest,
    fragment_id=ids,
    stream_id=ids,
    sequence_number=st.integers(min_value=0, max_value=MAX_SEQUENCE_NUMBER),
    audio=payloads().map(lambda p: p[0]),
    config=st.builds(
        ProcessConfig,
        source_language=languages,
        target_language=languages,
        voice=st.none() | st.text(max_size=64),
    ),
    timeout_ms=st.integers(min_value=MIN_TIMEOUT_MS, max_value=MAX_TIMEOUT_MS),
)


@st.composite
def responses(draw: st.DrawFn) -> ProcessResponse:
    status = draw(st.sampled_from(list(ProcessStatus)))
    audio: AudioPayload | None = draw(payloads().map(lambda p: p[0]))
    if status is ProcessStatus.SUCCESS:
        error = None
    else:
        error = draw(errors)
        if status is not ProcessStatus.PARTIAL:
            audio = draw(st.none() | st.just(audio))
    return ProcessResponse(
        fragment_id=draw(ids),
        stream_id=draw(ids),
        sequence_number=draw(st.integers(min_value=0, max_value=2**31)),
        status=status,
        audio=audio,
        transcript=draw(texts),
        translated_text=draw(texts),
        processing_time_ms=draw(millis),
        stage_timings=StageTimings(
            asr_ms=draw(millis), translation_ms=draw(millis), tts_ms=draw(millis)
        ),
        error=error,
    )


healths = st.builds(
    HealthResponse,
    status=st.sampled_from(list(HealthStatus)),
    service=st.text(max_size=20),
    version=st.text(max_size=20),
    git_revision=st.text(max_size=12),
    uptime_s=millis,
    backends=st.lists(
        st.builds(
            BackendHealth,
            stage=st.sampled_from(["asr", "translation", "tts"]),
            name=st.text(max_size=10),
            available=st.booleans(),
            detail=texts,
        ),
        max_size=3,
    ),
)


@FAST
@given(payloads())
def test_payload_round_trips_pcm(payload_and_pcm: tuple[AudioPayload, bytes]) -> None:
    payload, pcm = payload_and_pcm
    assert payload.pcm_bytes() == pcm
    assert payload.frame_count() * 2 * payload.channels == len(pcm)
    assert AudioPayload.from_pcm(payload.pcm_bytes(), payload.audio_format()) == payload


@FAST
@given(requests)
def test_request_round_trips_through_json(request: ProcessRequest) -> None:
    text = request.model_dump_json()
    assert ProcessRequest.model_validate_json(text) == request
    assert ProcessRequest.model_validate(json.loads(text)) == request


@FAST
@given(responses())
def test_response_round_trips_through_json(response: ProcessResponse) -> None:
    assert ProcessResponse.model_validate_json(response.model_dump_json()) == response


@FAST
@given(healths)
def test_health_round_trips_through_json(health: HealthResponse) -> None:
    assert HealthResponse.model_validate_json(health.model_dump_json()) == health


@FAST
@given(errors)
def test_error_response_round_trips_through_json(error: ErrorInfo) -> None:
    body = ErrorResponse(error=error)
    parsed = ErrorResponse.model_validate_json(body.model_dump_json())
    assert parsed == body
    assert parsed.error.retryable is error.code.retryable


@given(st.binary(max_size=64))
def test_byte_count_matches_the_decoded_length(pcm: bytes) -> None:
    text = base64.b64encode(pcm).decode("ascii")
    payload = AudioPayload.model_construct(sample_rate_hz=16000, channels=1, data_base64=text)
    assert payload.byte_count() == len(pcm)


@given(st.text(alphabet="AQgwBb0/+=-_ \n", max_size=16))
def test_an_accepted_base64_text_has_exactly_the_counted_bytes(text: str) -> None:
    """Whatever the text, a payload either fails validation or counts its bytes exactly."""
    try:
        payload = AudioPayload(sample_rate_hz=16000, channels=1, data_base64=text)
    except ValidationError:
        return
    assert payload.byte_count() == len(payload.pcm_bytes())
    assert base64.b64encode(payload.pcm_bytes()).decode() == text  # the one encoding
