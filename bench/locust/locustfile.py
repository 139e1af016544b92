"""Locust load for the web UI: POST /api/predict with a drawn digit, in steps of more users.

Run by bench/webui_saturation.py (which starts locust headless and reads the result); by hand:
    BENCH_OUT=steps.json locust -f bench/locust/locustfile.py --headless --host http://localhost:8080

Each step holds a number of users for BENCH_STEP_SECONDS; the first second of a step (users
arriving) is left out of its numbers. At the end, BENCH_OUT gets per step: users, requests,
errors, req/s, p50 and p99.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

from locust import FastHttpUser, LoadTestShape, events, task

ROOT = Path(__file__).resolve().parents[2]
PNG = ROOT / "docs" / "examples" / "digit-7.png"  # a 280x280 drawing, as the canvas sends it
STEPS = [int(n) for n in os.environ.get("BENCH_STEPS", "1,2,4,8,16,32").split(",")]
STEP_SECONDS = float(os.environ.get("BENCH_STEP_SECONDS", "10"))
SETTLE_SECONDS = 1.0  # users still arriving at the start of a step
BODY = {"image": base64.b64encode(PNG.read_bytes()).decode()}

_started: list[float] = []
_samples: dict[int, list[tuple[float, bool]]] = {i: [] for i in range(len(STEPS))}


def _step_at(moment: float) -> int | None:
    """The step a moment falls in, or None in a step's settling second or after the last."""
    elapsed = moment - _started[0]
    index = int(elapsed // STEP_SECONDS)
    if index >= len(STEPS) or elapsed - index * STEP_SECONDS < SETTLE_SECONDS:
        return None
    return index


@events.test_start.add_listener
def _on_start(**_kwargs) -> None:
    _started.append(time.monotonic())


@events.request.add_listener
def _on_request(response_time, exception, response, **_kwargs) -> None:
    step = _step_at(time.monotonic())
    if step is not None:
        ok = exception is None and response is not None and response.status_code == 200
        _samples[step].append((response_time, ok))


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary() -> list[dict]:
    """Per step: users, requests, errors, req/s (over the measured seconds), p50/p99 in ms."""
    rows = []
    for index, users in enumerate(STEPS):
        samples = _samples[index]
        ordered = sorted(ms for ms, _ in samples)
        measured = STEP_SECONDS - SETTLE_SECONDS
        rows.append({
            "users": users, "requests": len(samples),
            "errors": sum(not ok for _, ok in samples),
            "rps": round(len(samples) / measured, 1),
            "p50_ms": round(_percentile(ordered, 0.5), 1) if ordered else None,
            "p99_ms": round(_percentile(ordered, 0.99), 1) if ordered else None,
        })
    return rows


@events.quitting.add_listener
def _on_quit(**_kwargs) -> None:
    out = os.environ.get("BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(summary(), indent=2) + "\n")


class Steps(LoadTestShape):
    """1, 2, 4, ... users, each count held for STEP_SECONDS; then stop."""

    def tick(self):
        index = int(self.get_run_time() // STEP_SECONDS)
        if index >= len(STEPS):
            return None
        return STEPS[index], max(STEPS)  # all of a step's users arrive within its first second


class Drawer(FastHttpUser):
    """Someone drawing as fast as the UI answers: no think time, so steps find the ceiling."""

    @task
    def predict(self) -> None:
        self.client.post("/api/predict", json=BODY, name="/api/predict")
