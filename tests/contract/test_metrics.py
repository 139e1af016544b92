"""Prometheus metrics at /monitoring/prometheus/metrics (enabled by monitoring.config)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.contract

METRICS_PATH = "/monitoring/prometheus/metrics"


def test_metrics_count_requests_by_model(api, target):
    assert api.predict("half_plus_two", {"instances": [1.0]}).status_code == 200
    assert api.predict("half_plus_two", {"signature_name": "nope", "instances": [1.0]}
                       ).status_code == 400
    r = api.get(METRICS_PATH)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert 'model_name="half_plus_two"' in r.text or 'model="half_plus_two"' in r.text
    if target.local:  # our names; TF Serving's are :tensorflow:serving:request_count etc.
        ok = 'serving_requests_total{api="predict",model="half_plus_two",status="OK",version="1"}'
        assert ok in r.text
        assert 'status="INVALID_ARGUMENT",version="1"' in r.text
        assert "serving_request_latency_seconds_bucket" in r.text
