"""The web UI beside a hung MLflow, against `python -m serving`."""

from __future__ import annotations

import shutil
import socket
import time

import pytest
import requests

from tests.support.canary import publish_twice
from tests.support.images import canvas_png, data_url
from tests.support.servers import local_serving, local_webui

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
