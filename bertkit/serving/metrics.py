"""The server's Prometheus metrics (GET /metrics), on prometheus-client.

With several worker processes (`--workers N`), each process writes its values to
files in PROMETHEUS_MULTIPROC_DIR (set by `bertkit serve` before the workers start)
and /metrics adds them up, whichever process answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from bertkit.serving.batching import BatchStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # the *_created series only double what Prometheus scrapes
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class ServerMetrics:
    """Requests, errors, latency, batch sizes and queue depth of one server."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # A registry of our own, so two servers in one process (tests) do not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        self.requests = Counter(
            "bertkit_requests",
            "Requests answered, by path and HTTP status.",
            ["path", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "bertkit_request_seconds",
            "Time from receiving a prediction request to its predictions (errors aside).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.texts = Counter(
            "bertkit_units", "Units predicted (texts, question-context pairs).", registry=registry
        )
        self.batch_size = Histogram(
            "bertkit_batch_units", "Units per forward pass.", buckets=_BATCH_BUCKETS, registry=registry
        )
        self.batch_tokens = Histogram(
            "bertkit_batch_tokens",
            "Padded tokens per forward pass (units x longest).",
            buckets=_TOKEN_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "bertkit_batch_seconds", "Time of one forward pass.", buckets=_LATENCY_BUCKETS, registry=registry
        )
        self.queue = Gauge(
            "bertkit_queue_units",
            "Units waiting for a batch.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        if self.multiprocess:
            MultiProcessCollector(self.registry)

    def on_batch(self, stats: BatchStats, queued: int) -> None:
        self.queue.set(queued)
        self.batch_size.observe(stats.units)
        self.batch_tokens.observe(stats.tokens)
        self.batch_seconds.observe(stats.seconds)
        self.texts.inc(stats.units)

    def render(self, queued: int) -> bytes:
        """The Prometheus text format of every metric."""
        self.queue.set(queued)
        return generate_latest(self.registry)
