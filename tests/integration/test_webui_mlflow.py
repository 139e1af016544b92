"""The link from an answer to the MLflow run that trained the model, and MLflow being down.

Runs a real `mlflow server` on the session's SQLite store, so the web UI's REST lookups
(model-versions/get, runs/get) are checked against MLflow itself.
"""

from __future__ import annotations

import pytest

from tests.support.images import canvas_png, data_url
from tests.support.servers import free_port, until_linked
from webui import create_app

pytestmark = pytest.mark.integration

UI_URL = "http://mlflow.example:5000"  # what the browser would open; never fetched here


@pytest.fixture
def image(mnist) -> dict:
    return {"image": data_url(canvas_png(mnist.x_test[0]))}


def test_the_answer_links_the_run_that_trained_the_model(serving_url, mlflow_url, stack, image):
    app = create_app({"TF_SERVING_URL": serving_url, "MLFLOW_TRACKING_URI": mlflow_url,
                      "MLFLOW_UI_URL": UI_URL})
    client = app.test_client()
    run = until_linked(lambda: client.post("/api/predict", json=image).get_json())["model"]["run"]
    assert run["run_id"] == stack.run_id
    experiment = run["experiment_id"]
    assert run["url"] == (f"{UI_URL}/#/experiments/{experiment}/runs/{stack.run_id}"
                          "?workflowType=machine_learning")
    listed = client.get("/api/model").get_json()["versions"][0]["run"]
    assert listed == run


def test_mlflow_down_never_breaks_a_prediction(serving_url, image):
    app = create_app({"TF_SERVING_URL": serving_url,
                      "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    response = app.test_client().post("/api/predict", json=image)
    assert response.status_code == 200
    assert response.get_json()["model"]["run"] is None
