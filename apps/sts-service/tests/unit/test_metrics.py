"""GET /metrics: Prometheus text that parses, with the documented names and counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared_utils.contract import BackendHealth
from sts_service.metrics import BACKEND_STATES, backend_state

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


@pytest.mark.parametrize(("available", "state"), [(True, "ready"), (False, "unavailable")])
def test_backend_state_from_availability(available: bool, state: str) -> None:
    backend = BackendHealth(stage="asr", name="echo", available=available)
    assert backend_state(backend) == state and state in BACKEND_STATES
