"""Prometheus metrics for the web UI, one registry per app so tests can build many apps.

Run one process with threads (as `python -m webui` does): each process keeps its own
counters, and one process keeps /metrics whole.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "webui_http_requests", "HTTP requests answered, by route and status.",
            ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "webui_http_request_duration_seconds", "Time to answer a request, by route.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter(
            "webui_predictions", "Digits predicted, by model version and digit.",
            ["version", "digit"], registry=self.registry)
        self.serving_errors = Counter(
            "webui_tf_serving_errors", "Calls to the model service that failed, by kind.",
            ["kind"], registry=self.registry)
        self.serving_latency = Histogram(
            "webui_tf_serving_predict_duration_seconds", "Round trip of one :predict call.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.challenger_answers = Counter(
            "webui_challenger_answers", "Challenger answers beside the main one, by both "
            "versions, the main answer's digit and whether the two agreed.",
            ["version", "challenger_version", "digit", "agree"], registry=self.registry)
        self.challenger_missed = Counter(
            "webui_challenger_missed", "Challenger calls that gave no answer in time.",
            ["version", "challenger_version"], registry=self.registry)
        self.feedback = Counter(
            "webui_feedback", "Corrections stored, by the answer's version and verdict.",
            ["version", "verdict"], registry=self.registry)
        self.challenger_feedback = Counter(
            "webui_challenger_feedback", "Corrections stored of drawings the challenger also "
            "answered, by both versions and the challenger's verdict (right or wrong).",
            ["version", "challenger_version", "verdict"], registry=self.registry)

    def init_app(self, app: Flask) -> None:
        app.extensions["webui.metrics"] = self
        app.before_request(self._start)
        app.after_request(self._record)

    def _start(self) -> None:
        g.metrics_start = time.perf_counter()

    def _record(self, response):
        # Label by route name, never by raw path: unknown URLs must not grow the label set.
        endpoint = request.endpoint or "unmatched"
        self.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        if "metrics_start" in g:
            self.latency.labels(endpoint).observe(time.perf_counter() - g.metrics_start)
        return response

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)
