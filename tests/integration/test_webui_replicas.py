"""Corrections across web UI replicas, and a flood of large drawings that evicts no one.

Two `python -m webui` processes share one store behind a real round-robin nginx (Debian's):
a correction reaches whichever replica is next, usually not the one that answered.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.support.images import canvas_png, data_url
from tests.support.servers import local_webui, round_robin_nginx
from tests.support.tools import tool
from webui import create_app

pytestmark = pytest.mark.integration

ROUNDS = 100


def counter(metrics: str, name: str) -> float:
    """The sum of a Prometheus counter's samples in a /metrics text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(f"{name}{{"))


def test_any_replica_takes_any_correction(serving_url, mnist, tmp_path):
    nginx = tool("nginx", Path("/usr/sbin"))
    store = {"FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db"}
    (tmp_path / "nginx").mkdir()
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(local_webui(serving_url, **store)) for _ in range(2)]
        proxy = stack.enter_context(round_robin_nginx(nginx, replicas, tmp_path / "nginx"))
        session = requests.Session()
        statuses = []
        for i in range(ROUNDS):
            digit = {"image": data_url(canvas_png(mnist.x_test[i]))}
            answer = session.post(f"{proxy}/api/predict", json=digit, timeout=30)
            assert answer.status_code == 200, answer.text
            correction = session.post(f"{proxy}/api/feedback", timeout=30, json={
                "prediction_id": answer.json()["prediction_id"], "digit": int(mnist.y_test[i])})
            statuses.append(correction.status_code)
        assert statuses == [201] * ROUNDS, [s for s in statuses if s != 201][:5]
        served = [requests.get(f"{url}/metrics", timeout=5).text for url in replicas]
    given = [counter(m, "webui_predictions_total") for m in served]
    taken = [counter(m, "webui_feedback_total") for m in served]
    assert sum(given) == sum(taken) == ROUNDS
    # Round robin alternates, so (nearly) every correction reached the other replica.
    assert any(t > g for g, t in zip(given, taken, strict=True)), (given, taken)
    assert create_app(store).extensions["webui.store"].count() == ROUNDS


def noise_png(side: int = 200, seed: int = 0) -> bytes:
    """A PNG that does not compress: `side`² RGB noise, about 120 KB at 200."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_flood_of_large_drawings_evicts_no_one_elses_answer(serving_url, mnist, tmp_path):
    """One client sends more large PNGs than a replica keeps bytes for: the answer given just
    before is still correctable, and so is the flood's (kept without its PNG past the budget).
    """
    flood_png = noise_png()
    app = create_app({"TF_SERVING_URL": serving_url, "PENDING_MAX_BYTES": 8 * len(flood_png),
                      "FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db"})
    client = app.test_client()
    mine = client.post("/api/predict", json={"image": data_url(canvas_png(mnist.x_test[0]))})
    assert mine.status_code == 200, mine.get_json()
    flood = [client.post("/api/predict", json={"image": data_url(flood_png)}) for _ in range(20)]
    assert all(r.status_code == 200 for r in flood), flood[0].get_json()
    corrected = client.post("/api/feedback", json={
        "prediction_id": mine.get_json()["prediction_id"], "digit": int(mnist.y_test[0])})
    assert corrected.status_code == 201, corrected.get_json()
    last = client.post("/api/feedback",
                       json={"prediction_id": flood[-1].get_json()["prediction_id"], "digit": 1})
    assert last.status_code == 201, last.get_json()
    store = app.extensions["webui.store"]
    assert store.get(mine.get_json()["prediction_id"]).answer.png is not None
    assert store.get(flood[-1].get_json()["prediction_id"]).answer.png is None
