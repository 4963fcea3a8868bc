"""Prometheus metrics of sts-service, served on ``GET /metrics`` (open, for scrapers).

Each app gets its own registry (tests build many apps in one process). The metrics:

* ``sts_http_requests_total{path, status}``: every answer of the service, by HTTP status;
* ``sts_fragments_total{status, code}``: every ``/v1/process`` fragment answered 200, by its
  contract status and error code (``code=""`` for success);
* ``sts_request_duration_seconds{path}``: time to answer, per route;
* ``sts_stage_duration_seconds{stage}``: time in each pipeline stage (asr, translation, tts);
* ``sts_requests_in_flight``: ``/v1/process`` requests being served now; the HPA scales on it
  (a pod near ``STS_MAX_INFLIGHT`` is about to answer 429);
* ``sts_queue_full_total``: requests refused with 429 QUEUE_FULL (any of the HTTP limits, or an
  engine's slots and queue full);
* ``sts_backend_state{stage, backend, state}``: 1 for each backend's current state
  (``loading`` while its model loads, ``ready``, or ``unavailable``), read from the
  pipeline's health reports at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared_utils.contract import StageTimings
from sts_service.health import BACKEND_STATES, BackendReport

METRICS_PATH = "/metrics"
#: The Prometheus text exposition format, version 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds; a fragment is ~6 s of audio and the contract caps a request at 30 s.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _BackendCollector(Collector):
    def __init__(self, reports: Callable[[], Sequence[BackendReport]]) -> None:
        self._reports = reports

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "sts_backend_state",
            "Load state of each pipeline backend (1 for the current state).",
            labels=["stage", "backend", "state"],
        )
        for report in self._reports():
            current = report.metric_state
            for state in BACKEND_STATES:
                family.add_metric([report.stage, report.name, state], float(state == current))
        yield family


class StsMetrics:
    """The metrics of one app, in their own registry."""

    def __init__(self, backend_reports: Callable[[], Sequence[BackendReport]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "sts_http_requests",
            "Answers of the service, by route and HTTP status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.fragments = Counter(
            "sts_fragments",
            "Fragments answered 200 by /v1/process, by contract status and error code.",
            ["status", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "sts_request_duration_seconds",
            "Time to answer a request, by route.",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "sts_stage_duration_seconds",
            "Time spent in each pipeline stage of a fragment.",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "sts_requests_in_flight",
            "/v1/process requests being served now.",
            registry=self.registry,
        )
        self.queue_full = Counter(
            "sts_queue_full",
            "Requests refused with 429 QUEUE_FULL (service or engine queue full).",
            registry=self.registry,
        )
        self.registry.register(_BackendCollector(backend_reports))

    def observe_fragment(self, status: str, code: str | None, timings: StageTimings) -> None:
        """Count one fragment and its per-stage times (a stage that did not run is skipped)."""
        self.fragments.labels(status=status, code=code or "").inc()
        for stage, ms in (
            ("asr", timings.asr_ms),
            ("translation", timings.translation_ms),
            ("tts", timings.tts_ms),
        ):
            if ms > 0:
                self.stage_duration.labels(stage=stage).observe(ms / 1000.0)

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``: the registry in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)


class MetricsMiddleware:
    """Count every answer by route and status; time the routes; track /v1/process in flight.

    Paths outside `known_paths` are counted as ``path="other"``, so a scan of random URLs
    cannot grow the number of series without bound.
    """

    def __init__(
        self, app: ASGIApp, metrics: StsMetrics, known_paths: Iterable[str], inflight_path: str
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = frozenset(known_paths)
        self.inflight_path = inflight_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in self.known_paths else "other"
        status = [500]  # what the client sees when the app raises before answering

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        tracked = scope["path"] == self.inflight_path
        if tracked:
            self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if tracked:
                self.metrics.in_flight.dec()
            self.metrics.request_duration.labels(path=path).observe(time.perf_counter() - started)
            self.metrics.http_requests.labels(path=path, status=str(status[0])).inc()
            if status[0] == 429:
                self.metrics.queue_full.inc()
