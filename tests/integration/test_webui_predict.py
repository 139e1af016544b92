"""The web UI for real (`python -m webui`, waitress) in front of `python -m serving`.

The model is the session's small trained one; requests are MNIST test digits drawn the way a
person's canvas sends them: dark ink on white, 280x280 PNG.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from contract import CANARY_LABEL, STABLE_LABEL
from tests.support.images import canvas_png, data_url
from tests.support.servers import local_webui
from tests.unit.test_webui_odd_images import ODD_IMAGES
from webui import create_app
from webui.tfs_client import ImageRefused, TFServingClient

pytestmark = pytest.mark.integration

DIGITS = 200
MIN_ACCURACY = 0.95


@pytest.fixture(scope="module")
def webui_url(serving_url):
    with local_webui(serving_url) as url:
        yield url


def test_mnist_test_digits_through_the_ui(webui_url, mnist, stack):
    session = requests.Session()
    right = 0
    for pixels, label in zip(mnist.x_test[:DIGITS], mnist.y_test[:DIGITS], strict=True):
        response = session.post(f"{webui_url}/api/predict",
                                json={"image": data_url(canvas_png(pixels))}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        right += body["digit"] == int(label)
    accuracy = right / DIGITS
    assert accuracy >= MIN_ACCURACY, f"{right}/{DIGITS} right through /api/predict"


def test_answer_shape(webui_url, mnist, stack):
    response = requests.post(f"{webui_url}/api/predict",
                             json={"image": data_url(canvas_png(mnist.x_test[0]))}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["prediction_id", "digit", "probabilities", "confident", "top",
                          "normalized", "model", "latency_ms"]
    assert isinstance(body["digit"], int) and 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-3)
    assert body["digit"] == int(np.argmax(body["probabilities"]))
    normalized = np.array(body["normalized"])
    assert normalized.shape == (28, 28)
    assert 0 <= normalized.min() and normalized.max() <= 255 and normalized.max() > 100
    assert body["model"] == {"name": "mnist", "version": str(stack.version),
                             "label": STABLE_LABEL, "run": None}  # sqlite MLflow: no link
    assert isinstance(body["latency_ms"], float) and body["latency_ms"] > 0


def test_light_on_dark_and_small_images_give_the_same_digit(webui_url, mnist):
    pixels = mnist.x_test[1]
    answers = set()
    for png in (canvas_png(pixels), canvas_png(255 - pixels, side=28)):
        body = requests.post(f"{webui_url}/api/predict", json={"image": data_url(png)},
                             timeout=30).json()
        answers.add(body["digit"])
    assert answers == {int(mnist.y_test[1])}


def test_model_listing(webui_url, stack):
    body = requests.get(f"{webui_url}/api/model", timeout=10).json()
    version = str(stack.version)
    assert body["name"] == "mnist"
    assert body["label"] == STABLE_LABEL
    assert body["labels"][STABLE_LABEL] == version
    assert set(body["labels"]) <= {STABLE_LABEL, CANARY_LABEL}
    [served] = body["versions"]
    assert served == {"version": version, "state": "AVAILABLE", "labels": served["labels"],
                      "run": None}  # sqlite MLflow: no run to link
    assert set(served["labels"]) == set(body["labels"])


def test_ready_and_metrics(webui_url, stack):
    ready = requests.get(f"{webui_url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": {
        "name": "mnist", "label": STABLE_LABEL, "version": str(stack.version)}}
    metrics = requests.get(f"{webui_url}/metrics", timeout=10).text
    assert "webui_tf_serving_predict_duration_seconds_count" in metrics


def test_a_label_that_names_nothing_is_503_not_500(serving_url, mnist):
    client = create_app({"TF_SERVING_URL": serving_url, "MODEL_LABEL": "nonexistent"}).test_client()
    response = client.post("/api/predict", json={"image": data_url(canvas_png(mnist.x_test[0]))})
    assert response.status_code == 503
    assert "not available" in response.get_json()["error"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "nonexistent" in ready.get_json()["reason"]


@pytest.mark.parametrize("make", [case[1] for case in ODD_IMAGES if case[2] == 400],
                         ids=[case[0] for case in ODD_IMAGES if case[2] == 400])
def test_an_image_the_model_cannot_decode_is_the_clients_400(serving_url, stack, make):
    """Sent past the web UI's checks, serving's decoder refuses it: a 400 naming the image."""
    client = TFServingClient(serving_url, "mnist", timeout=10)
    with pytest.raises(ImageRefused) as refused:
        client.predict_image(make(), str(stack.version))
    assert refused.value.status == 400
    assert "could not decode the image" in refused.value.message
    assert "\n" not in refused.value.message
