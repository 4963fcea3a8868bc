"""--metrics-port: the run's statistics as Prometheus metrics, and the bearer token header."""

from __future__ import annotations

import socket
import urllib.request
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from worker_support import free_port

from shared_audio import AudioFormat
from shared_utils.resilience import CircuitBreaker
from stream_worker.client import StsClient
from stream_worker.metrics import STREAM_LABEL, RunStatsCollector, serve_metrics
from stream_worker.outcome import FallbackReason
from stream_worker.summary import RunStats


def _stats() -> RunStats:
    stats = RunStats()
    stats.segments, stats.dubbed, stats.retries = 3, 2, 1
    stats.fallbacks[FallbackReason.TIMEOUT] = 1
    stats.round_trip_ms.extend([20.0, 40.0, 3000.0])
    stats.emit_delay_ms.extend([30.0, 55.0])
    return stats


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_server_serves_the_run_statistics() -> None:
    stats = _stats()
    port = free_port()
    stop = serve_metrics(port, "127.0.0.1", lambda: stats, "news")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        stop()
    values = _values(text)
    stream = (STREAM_LABEL, "news")
    assert values[("stream_worker_segments_total", (("outcome", "dubbed"), stream))] == 2
    assert values[("stream_worker_segments_total", (("outcome", "fallback"), stream))] == 1
    assert values[("stream_worker_fallbacks_total", (("reason", "timeout"), stream))] == 1
    assert values[("stream_worker_retries_total", (stream,))] == 1
    assert values[("stream_worker_round_trip_seconds_count", (stream,))] == 3
    assert values[("stream_worker_round_trip_seconds_bucket", (("le", "0.05"), stream))] == 2
    assert values[("stream_worker_round_trip_seconds_bucket", (("le", "+Inf"), stream))] == 3
    assert values[("stream_worker_output_lag_seconds", (stream,))] == pytest.approx(0.055)


def test_families_follow_the_naming_conventions() -> None:
    for family in RunStatsCollector(_stats, "s").collect():
        assert family.name.startswith("stream_worker_") and family.documentation
        if family.type == "histogram":
            assert family.name.endswith("_seconds")


def test_an_empty_run_has_zero_lag_and_no_round_trips() -> None:
    families = {f.name: f for f in RunStatsCollector(RunStats, "s").collect()}
    assert families["stream_worker_output_lag_seconds"].samples[0].value == 0.0
    counts = [
        s for s in families["stream_worker_round_trip_seconds"].samples if s.name.endswith("_count")
    ]
    assert counts[0].value == 0


@pytest.mark.parametrize("token", [None, "worker-secret-1"])
async def test_the_client_sends_its_bearer_token(token: str | None) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(503)

    client = StsClient(
        "http://sts.test",
        AudioFormat(16000, 1),
        source_lang="en",
        target_lang="es",
        timeout_ms=2000,
        breaker=CircuitBreaker(),
        transport=httpx.MockTransport(handler),
        token=token,
    )
    async with client:
        await client.send(0, np.zeros(1600, dtype=np.int16))
    assert seen and all(value == (f"Bearer {token}" if token else None) for value in seen)


def test_a_taken_metrics_port_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream_worker.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sample = tmp_path / "in.wav"
        with wave.open(str(sample), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(b"\0\0" * 1600)
        code = main(
            [
                "--input",
                str(sample),
                "--output",
                str(tmp_path / "out.wav"),
                "--metrics-port",
                str(port),
            ]
        )
    assert code == 2
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "document", [Path("README.md"), Path("..", "..", "docs", "deployment.md")], ids=str
)
def test_the_docs_name_every_family_with_the_labels_it_has(document: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / document).read_text(encoding="utf-8")
    for family in RunStatsCollector(_stats, "news").collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = [label for label in family.samples[0].labels if label != "le"]
        assert labels[0] == STREAM_LABEL
        assert f"`{name}{{{','.join(labels)}}}`" in text, (document, name, labels)
