"""GET /metrics: Prometheus text that parses, with the documented names and counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sts_service.backends import EchoTranslator, EchoTTS
from sts_service.backends.base import AudioClip, EngineOptions, Fragment, SyncASRBackend
from sts_service.health import BACKEND_STATES, backend_reports
from sts_service.pipeline import Pipeline

EXPECTED = {
    "sts_http_requests",
    "sts_fragments",
    "sts_request_duration_seconds",
    "sts_stage_duration_seconds",
    "sts_requests_in_flight",
    "sts_queue_full",
    "sts_backend_state",
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def test_metrics_parse_and_follow_the_naming_conventions(client: httpx.AsyncClient) -> None:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert EXPECTED <= set(families)
    for name, family in families.items():
        if not name.startswith("sts_"):
            continue
        assert family.documentation, f"{name} has no help text"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: durations are in seconds"


async def test_requests_stages_and_statuses_are_counted(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    async with make_client() as client:
        assert (await client.post("/v1/process", json=make_body())).status_code == 200
        assert (await client.post("/v1/process", json={"nope": 1})).status_code == 422
        await client.get("/random-scan-path")
        text = (await client.get("/metrics")).text
    values = _samples(text)
    assert values[("sts_http_requests_total", (("path", "/v1/process"), ("status", "200")))] == 1
    assert values[("sts_http_requests_total", (("path", "/v1/process"), ("status", "422")))] == 1
    assert values[("sts_http_requests_total", (("path", "other"), ("status", "404")))] == 1
    assert values[("sts_fragments_total", (("code", ""), ("status", "success")))] == 1
    for stage in ("asr", "translation", "tts"):
        assert values[("sts_stage_duration_seconds_count", (("stage", stage),))] == 1
    assert values[("sts_requests_in_flight", ())] == 0
    assert values[("sts_queue_full_total", ())] == 0
    ready = ("sts_backend_state", (("backend", "echo"), ("stage", "asr"), ("state", "ready")))
    assert values[ready] == 1


async def test_failed_fragments_are_counted_by_code(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    async with make_client(fault_enabled=True, fault_fail_rate=1.0) as client:
        await client.post("/v1/process", json=make_body())
        text = (await client.get("/metrics")).text
    failed = [
        k
        for k in _samples(text)
        if k[0] == "sts_fragments_total" and ("code", "MODEL_ERROR") in k[1]
    ]
    assert failed, text


async def test_queue_full_is_counted(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    async with make_client(max_inflight=1, fault_enabled=True, fault_latency_ms=300) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/process", json=make_body()) for _ in range(3))
        )
        text = (await client.get("/metrics")).text
    refused = sum(1 for answer in answers if answer.status_code == 429)
    assert refused >= 1
    assert _samples(text)[("sts_queue_full_total", ())] == refused


class _LoadingASR(SyncASRBackend):
    """A backend with a model that never finishes loading in this test."""

    def __init__(self) -> None:
        super().__init__(EngineOptions())

    def needs_loading(self) -> bool:
        return True

    def transcribe_sync(self, audio: AudioClip, fragment: Fragment) -> str:
        return ""


def _states(pipeline: Pipeline) -> list[str]:
    return [report.metric_state for report in backend_reports(pipeline.loading)]


async def test_a_loading_backend_is_reported_loading_then_ready() -> None:
    # The collector used to read a `state` field the health model lacks: never "loading".
    pipeline = Pipeline(_LoadingASR(), EchoTranslator(), EchoTTS())
    assert _states(pipeline) == ["loading", "ready", "ready"]
    await pipeline.load()
    assert _states(pipeline) == ["ready", "ready", "ready"]
    assert set(_states(pipeline)) <= set(BACKEND_STATES)


async def test_a_backend_that_failed_to_load_is_unavailable() -> None:
    asr = _LoadingASR()

    def broken() -> None:
        raise RuntimeError("no model")

    asr.load = broken  # type: ignore[method-assign]  # a load that fails, for this test only
    pipeline = Pipeline(asr, EchoTranslator(), EchoTTS())
    await pipeline.load()
    assert _states(pipeline)[0] == "unavailable"


async def test_the_metric_says_loading_while_a_model_loads() -> None:
    from sts_service.app import create_app
    from sts_service.config import StsSettings

    app = create_app(StsSettings(), pipeline=Pipeline(_LoadingASR(), EchoTranslator(), EchoTTS()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sts") as client:
        text = (await client.get("/metrics")).text
    loading = (
        "sts_backend_state",
        (("backend", "unnamed"), ("stage", "asr"), ("state", "loading")),
    )
    assert _samples(text)[loading] == 1
