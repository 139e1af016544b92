"""Prometheus metrics of REST and gRPC: request count and latency by model, version, status.

Each app gets its own registry, so several apps (tests) can live in one process. `status` is
TF Serving's code name (OK, NOT_FOUND, ...), as in its own `:tensorflow:serving:request_count`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LABELS = ("model", "version", "api", "status")
# Loopback predictions take milliseconds; a cold or overloaded server takes seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serving_requests", "REST API requests answered", LABELS, registry=self.registry)
        self.latency = Histogram(
            "serving_request_latency_seconds", "Time to answer a REST API request", LABELS,
            buckets=BUCKETS, registry=self.registry)

    def observe(self, model: str, version: str, api: str, status: str, seconds: float) -> None:
        labels = (model, version, api, status)
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def page(self) -> bytes:
        return generate_latest(self.registry)
