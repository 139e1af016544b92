"""Readiness follows the model service: 503 while it is stopped, 200 once it is back.

The web UI keeps running throughout; TF Serving (`python -m serving`) is stopped and started
again on the same port, as a container restart would.
"""

from __future__ import annotations

import sys

import pytest
import requests

from tests.support.images import canvas_png, data_url
from tests.support.servers import (
    free_port,
    local_webui,
    model_available,
    process,
    stop,
    wait_until,
)

pytestmark = pytest.mark.integration


def serving(models_config, port: int):
    url = f"http://127.0.0.1:{port}"
    return process([sys.executable, "-m", "serving", f"--rest_api_port={port}",
                    f"--model_config_file={models_config}"],
                   lambda: model_available(url), f"python -m serving on {port}")


def test_readyz_follows_the_model_service(stack, mnist):
    port = free_port()
    image = {"image": data_url(canvas_png(mnist.x_test[0]))}
    with local_webui(f"http://127.0.0.1:{port}") as ui:
        def ready() -> requests.Response:
            return requests.get(f"{ui}/readyz", timeout=5)

        with serving(stack.models_config, port) as first:
            assert ready().status_code == 200
            assert requests.post(f"{ui}/api/predict", json=image, timeout=30).ok
            stop(first)
            response = ready()
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
            assert "not reachable" in response.json()["reason"]
            answer = requests.post(f"{ui}/api/predict", json=image, timeout=30)
            assert answer.status_code == 503 and "error" in answer.json()

        with serving(stack.models_config, port):
            wait_until(lambda: ready().status_code == 200, 30, "web UI ready again")
            answer = requests.post(f"{ui}/api/predict", json=image, timeout=30)
            assert answer.status_code == 200
            assert answer.json()["digit"] == int(mnist.y_test[0])
