"""Optional Prometheus metrics of a live run (`WORKER_METRICS_PORT`), read from RunStats.

The values are computed at scrape time from the run's own statistics, so the dubbing path
does no extra work for them. Served by prometheus_client's small HTTP server, in its thread:

Every family is labelled by ``stream_id`` (`STREAM_LABEL`), the stream's id:

* ``stream_worker_segments_total{outcome}``: segments written, ``dubbed`` or ``fallback``;
* ``stream_worker_fallbacks_total{reason}``: fallback segments by reason;
* ``stream_worker_retries_total``: requests sent again after a retryable failure;
* ``stream_worker_round_trip_seconds``: request sent -> final answer, per segment;
* ``stream_worker_output_lag_seconds``: for the last segment written, the time from its last
  input sample to its output (what a viewer waits for the dub).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from stream_worker.outcome import FallbackReason
from stream_worker.summary import RunStats

#: Seconds; a 6 s segment must come back well within its own length to keep up.
ROUND_TRIP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The label that names a stream in every family: its id, under the name the wire contract,
#: the JSON summary and the log lines give it (one name to search for, everywhere).
STREAM_LABEL = "stream_id"


class StreamsCollector(Collector):
    """Prometheus families of several runs (one label value per stream), computed at scrape.

    Args:
        streams: Returns ``(stream id, stats)`` of every stream to report, at each scrape.
    """

    def __init__(self, streams: Callable[[], Iterable[tuple[str, RunStats]]]) -> None:
        self._streams = streams

    def collect(self) -> Iterable[Metric]:
        """Yield every family (called by the registry at each scrape)."""
        runs = [([stream_id], stats) for stream_id, stats in self._streams()]
        segments = CounterMetricFamily(
            "stream_worker_segments",
            "Segments written, by outcome.",
            labels=[STREAM_LABEL, "outcome"],
        )
        fallbacks = CounterMetricFamily(
            "stream_worker_fallbacks",
            "Segments written as original audio, by reason.",
            labels=[STREAM_LABEL, "reason"],
        )
        retries = CounterMetricFamily(
            "stream_worker_retries", "Requests sent again after a failure.", labels=[STREAM_LABEL]
        )
        round_trip = HistogramMetricFamily(
            "stream_worker_round_trip_seconds",
            "Request sent -> final answer, per segment.",
            labels=[STREAM_LABEL],
        )
        lag = GaugeMetricFamily(
            "stream_worker_output_lag_seconds",
            "Last input sample -> output, for the last segment written.",
            labels=[STREAM_LABEL],
        )
        for stream, stats in runs:
            segments.add_metric([*stream, "dubbed"], stats.dubbed)
            segments.add_metric([*stream, "fallback"], stats.fallback_total)
            for reason in FallbackReason:
                fallbacks.add_metric([*stream, reason.value], stats.fallbacks[reason])
            retries.add_metric(stream, stats.retries)
            _add_histogram(round_trip, stream, [ms / 1000.0 for ms in list(stats.round_trip_ms)])
            delays = list(stats.emit_delay_ms)
            lag.add_metric(stream, delays[-1] / 1000.0 if delays else 0.0)
        yield from (segments, fallbacks, retries, round_trip, lag)


class RunStatsCollector(StreamsCollector):
    """Prometheus families of one run, computed from `stats()` at each scrape."""

    def __init__(self, stats: Callable[[], RunStats], stream_id: str) -> None:
        super().__init__(lambda: [(stream_id, stats())])


def _add_histogram(family: HistogramMetricFamily, stream: list[str], values: list[float]) -> None:
    ordered = sorted(values)
    buckets = [(str(bound), bisect.bisect_right(ordered, bound)) for bound in ROUND_TRIP_BUCKETS]
    buckets.append(("+Inf", len(ordered)))
    family.add_metric(stream, buckets, sum(ordered))


def serve_metrics(
    port: int, host: str, stats: Callable[[], RunStats], stream_id: str
) -> Callable[[], None]:
    """Serve the run's metrics on http://host:port/metrics; returns the function that stops it."""
    return serve_collector(port, host, RunStatsCollector(stats, stream_id))


def serve_collector(port: int, host: str, collector: Collector) -> Callable[[], None]:
    """Serve `collector` on http://host:port/metrics; returns the function that stops it."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
