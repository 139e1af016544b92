"""The loop for real: `python -m webui` (gunicorn) answers, people correct, the store keeps it.

Also the challenger: two published versions, label canary on the second, and a proxy in front
of the model server that can hold the canary's answers back.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from corrections.store import FeedbackStore
from tests.support.canary import publish_twice
from tests.support.images import canvas_png, data_url
from tests.support.servers import free_port, local_serving, local_webui, process
from training import models_config

pytestmark = pytest.mark.integration


def predict(url: str, pixels, session=requests) -> dict:
    response = session.post(f"{url}/api/predict", json={"image": data_url(canvas_png(pixels))},
                            timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_answers_carry_an_id_a_confidence_and_the_likeliest_digits(serving_url, mnist, tmp_path):
    with local_webui(serving_url, FEEDBACK_DB_URL=f"sqlite:///{tmp_path}/f.db") as url:
        body = predict(url, mnist.x_test[0])
    assert body["prediction_id"].startswith("p") and body["confident"] is True
    assert [t["digit"] for t in body["top"]][0] == body["digit"] and len(body["top"]) == 3
    assert body["top"][0]["probability"] >= body["top"][1]["probability"]
    assert body["top"][1]["probability"] >= body["top"][2]["probability"]
    assert "challenger" not in body  # canary names the same version as stable


def test_a_correction_stores_the_answer_the_png_and_the_28x28(serving_url, mnist, stack,
                                                              tmp_path):
    db = f"sqlite:///{tmp_path}/feedback.db"
    with local_webui(serving_url, FEEDBACK_DB_URL=db) as url:
        body = predict(url, mnist.x_test[1])
        response = requests.post(f"{url}/api/feedback",
                                 json={"prediction_id": body["prediction_id"], "digit": 4},
                                 timeout=10)
    assert response.status_code == 201, response.text
    row = FeedbackStore(db).get(body["prediction_id"])
    assert row.id == response.json()["id"] and row.correction == 4
    assert row.answer.model_version == str(stack.version) and row.answer.digit == body["digit"]
    assert row.answer.png == canvas_png(mnist.x_test[1])
    kept = np.frombuffer(row.answer.normalized, np.uint8).reshape(28, 28)
    assert np.abs(kept - np.rint(np.array(body["normalized"]))).max() <= 1


def test_acknowledged_corrections_survive_kill_9_of_the_ui(serving_url, mnist, tmp_path):
    db = f"sqlite:///{tmp_path}/feedback.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "webui", "--port", str(port)]
    env = {"TF_SERVING_URL": serving_url, "FEEDBACK_DB_URL": db}
    acknowledged: list[str] = []
    with process(args, lambda: requests.get(f"{url}/healthz", timeout=1).ok, "webui",
                 timeout=60, env=env) as ui:
        session = requests.Session()
        ids = [predict(url, pixels, session)["prediction_id"] for pixels in mnist.x_test[:200]]

        def correct(prediction_id: str) -> None:
            try:
                response = requests.post(f"{url}/api/feedback", timeout=10,
                                         json={"prediction_id": prediction_id, "digit": 7})
            except requests.RequestException:
                return  # cut off by the kill: not acknowledged
            if response.status_code == 201:
                acknowledged.append(prediction_id)

        with ThreadPoolExecutor(8) as pool:
            for prediction_id in ids:
                pool.submit(correct, prediction_id)
            deadline = time.monotonic() + 60
            while len(acknowledged) < 60 and time.monotonic() < deadline:
                time.sleep(0.005)
            os.killpg(ui.pid, signal.SIGKILL)
    assert 60 <= len(acknowledged) < 200  # the kill came in the middle of the burst
    with local_webui(serving_url, FEEDBACK_DB_URL=db) as restarted:
        assert requests.get(f"{restarted}/healthz", timeout=5).ok
        stored = {c.answer.prediction_id for c in FeedbackStore(db).corrections()}
    assert set(acknowledged) <= stored


class DelayingProxy(ThreadingHTTPServer):
    """Forwards to the model server; holds answers for version `slow` back `delay` seconds."""

    daemon_threads = True

    def __init__(self, upstream: str, slow: str):
        self.upstream, self.slow, self.delay = upstream, slow, 0.0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if f"/versions/{self.server.slow}" in self.path:
            time.sleep(self.server.delay)
        upstream = requests.request(self.command, self.server.upstream + self.path, data=body,
                                    headers={"Content-Type": "application/json"}, timeout=30)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = do_POST = _forward


@pytest.fixture(scope="module")
def canary_config(stack, tmp_path_factory):
    """Versions 1 (stable) and 2 (canary): the session's model published twice."""
    return publish_twice(stack.base_path / str(stack.version), tmp_path_factory.mktemp("canary"))


@pytest.fixture(scope="module")
def canary_serving(canary_config, tmp_path_factory):
    with local_serving(canary_config) as url:
        proxy = DelayingProxy(url, slow="2")
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        yield proxy
        proxy.shutdown()


@pytest.fixture(scope="module")
def canary_ui(canary_serving, tmp_path_factory):
    db = tmp_path_factory.mktemp("canary-db") / "feedback.db"
    with local_webui(canary_serving.url, FEEDBACK_DB_URL=f"sqlite:///{db}") as url:
        yield url


def test_the_challenger_answers_beside_the_champion_and_agreement_is_counted(
        canary_ui, canary_serving, mnist):
    canary_serving.delay = 0.0
    body = predict(canary_ui, mnist.x_test[2])
    assert body["model"]["version"] == "1"
    challenger = body["challenger"]
    assert challenger["version"] == "2" and challenger["label"] == "canary"
    assert challenger["digit"] == body["digit"] and challenger["agrees"] is True
    assert challenger["probabilities"] == pytest.approx(body["probabilities"], abs=1e-5)
    metrics = requests.get(f"{canary_ui}/metrics", timeout=5).text
    assert (f'webui_challenger_answers_total{{agree="true",challenger_version="2",'
            f'digit="{body["digit"]}",version="1"}}') in metrics


def test_a_slow_challenger_never_holds_the_answer_back(canary_ui, canary_serving, mnist):
    predict(canary_ui, mnist.x_test[3])  # the label lookups are cached now
    canary_serving.delay = 2.0
    started = time.perf_counter()
    body = predict(canary_ui, mnist.x_test[3])
    seconds = time.perf_counter() - started
    canary_serving.delay = 0.0
    assert seconds < 1.0, f"the answer took {seconds:.2f}s behind a 2 s challenger"
    assert body["challenger"]["version"] == "2" and body["challenger"]["digit"] is None
    assert "did not answer within 300 ms" in body["challenger"]["note"]
    metrics = requests.get(f"{canary_ui}/metrics", timeout=5).text
    assert 'webui_challenger_missed_total{challenger_version="2",version="1"}' in metrics


def test_the_answer_comes_when_the_challenger_is_down(canary_config, stack, mnist, tmp_path):
    """Serving only knows version 1, yet the UI believes canary is 2: the answer still comes."""
    only_stable = tmp_path / "models.config"
    models_config.write(models_config.build(1, base_path=str(stack.base_path)), only_stable)
    with local_serving(only_stable) as url, \
            local_webui(url, FEEDBACK_DB_URL=f"sqlite:///{tmp_path}/f.db") as ui:
        body = predict(ui, mnist.x_test[4])
    assert body["model"]["version"] == "1" and "challenger" not in body
