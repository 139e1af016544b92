"""The web UI across a promotion and beside a hung MLflow, against `python -m serving`.

A promotion here is what `promote` does: models.config rewritten, which the server re-reads
every second, loading the new versions and unloading the old.
"""

from __future__ import annotations

import shutil
import socket
import time

import pytest
import requests

from contract import CANARY_LABEL, STABLE_LABEL
from tests.support.canary import publish_twice
from tests.support.images import canvas_png, data_url
from tests.support.servers import local_serving, local_webui, wait_until
from training import models_config
from webui import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def hung_mlflow():
    """A loopback socket that takes connections (the kernel's backlog does) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def versions(stack, tmp_path):
    """Versions 1 (stable) and 2 (canary) served, and 3 to 5 on disk, ready to promote."""
    config = publish_twice(stack.base_path / str(stack.version), tmp_path)
    for version in ("3", "4", "5"):
        shutil.copytree(tmp_path / "mnist" / "1", tmp_path / "mnist" / version)
    return config


def test_a_hung_mlflow_never_holds_the_first_answer(versions, hung_mlflow, mnist, tmp_path):
    """Before: the run lookups held the first answer 2 s per unseen version, 4 s in all."""
    with local_serving(versions) as serving, \
            local_webui(serving, MLFLOW_TRACKING_URI=hung_mlflow,
                        FEEDBACK_DB_URL=f"sqlite:///{tmp_path}/f.db") as ui:
        started = time.perf_counter()
        response = requests.post(f"{ui}/api/predict", timeout=30,
                                 json={"image": data_url(canvas_png(mnist.x_test[0]))})
        seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert seconds < 1.0, f"the first answer took {seconds:.2f} s behind a hung MLflow"
    assert body["model"]["version"] == "1" and body["model"]["run"] is None
    assert body["challenger"]["version"] == "2" and body["challenger"]["run"] is None


def promote(config, serving: str, stable: int, canary: int | None = None) -> None:
    """Rewrite models.config as `promote` does; wait until the server serves just that."""
    models_config.write(models_config.build(stable, canary, base_path=str(config.parent / "mnist")),
                        config)
    wanted = {str(stable), str(canary or stable)}

    def served() -> bool:
        states = requests.get(f"{serving}/v1/models/mnist", timeout=5).json()
        available = {s["version"] for s in states["model_version_status"]
                     if s["state"] == "AVAILABLE"}
        labels = {requests.get(f"{serving}/v1/models/mnist/labels/{label}", timeout=5).json()
                  ["model_version_status"][0]["version"] for label in (STABLE_LABEL,
                                                                       CANARY_LABEL)}
        return available == wanted and labels == {str(stable), str(canary or stable)}

    wait_until(served, 60, f"serving stable={stable} canary={canary}")


def test_a_promotion_never_shows_a_phantom_challenger(versions, mnist):
    """The web UI's label caches are made to outlive each promotion, the window in which
    the page used to show "challenger vN: Servable not found" or itself as the challenger."""
    image = {"image": data_url(canvas_png(mnist.x_test[0]))}
    flags = ("--model_config_file_poll_wait_seconds=1",  # as the stacks run it
             "--allow_version_labels_for_unavailable_models=true")
    with local_serving(versions, flags=flags) as serving:
        def predict_across(stable: int, canary: int | None = None) -> dict:
            """An answer from a UI whose labels were cached before the promotion, after it."""
            client = create_app({"TF_SERVING_URL": serving, "VERSION_CACHE_SECONDS": 600,
                                 "FEEDBACK": "off"}).test_client()
            assert client.post("/api/predict", json=image).status_code == 200
            promote(versions, serving, stable, canary)
            response = client.post("/api/predict", json=image)
            assert response.status_code == 200, response.text
            return response.get_json()

        moved = predict_across(1, 3)  # a new canary: the old one (2) is unloaded
        assert moved["model"]["version"] == "1"
        assert moved["challenger"]["version"] == "3" and moved["challenger"]["digit"] is not None
        unloaded = predict_across(4)  # another version promoted: stable 1 and canary 3 unloaded
        assert unloaded["model"]["version"] == "4" and "challenger" not in unloaded
        promote(versions, serving, 4, 5)
        promoted = predict_across(5)  # the canary promoted: it is the champion now
        assert promoted["model"]["version"] == "5" and "challenger" not in promoted
