"""MLflow behind its basic-auth app (docker-compose.auth.yml), for real, on loopback.

Anonymous writes are refused; the trainer's CLI and the web UI's run links work with
MLFLOW_TRACKING_USERNAME/PASSWORD, the variables the compose override gives them.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import requests

from tests.integration.test_training import cli, settings_in
from tests.support.servers import free_port, process
from webui import create_app

pytestmark = pytest.mark.integration

USER, PASSWORD = "admin", "a-test-password-of-24ch"


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-auth")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The packaged basic_auth.ini, with the user store in the test's folder (the image keeps
    # it in its working directory, /mlruns).
    (folder / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder}/basic_auth.db\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
           "MLFLOW_AUTH_ADMIN_USERNAME": USER, "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-secret",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with process(args, lambda: requests.get(f"{url}/health", timeout=2).ok, "mlflow basic-auth",
                 timeout=180, env=env, log=folder / "mlflow.log"):
        yield url


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/2.0/mlflow/experiments/create", {"json": {"name": "intruder"}}),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/intruder.txt", {"data": b"written"}),
    ("GET", "/api/2.0/mlflow/registered-models/search", {}),
])
def test_anonymous_requests_are_refused(mlflow_url, method, path, body):
    assert requests.request(method, mlflow_url + path, timeout=10, **body).status_code == 401
    assert requests.get(f"{mlflow_url}/health", timeout=10).status_code == 200


def test_the_trainer_and_the_run_links_work_with_credentials(mlflow_url, tmp_path, mnist_dir,
                                                            monkeypatch):
    settings = dataclasses.replace(settings_in(tmp_path, mnist_dir), tracking_uri=mlflow_url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    trained = cli(settings, "train", "--model", "convnet", "--train-limit", "500",
                  "--epochs", "1")
    assert trained.returncode == 0, trained.stderr[-3000:]

    runs = create_app({"MLFLOW_TRACKING_URI": mlflow_url}).extensions["webui.runs"]
    runs.wait = 30  # the test waits for the background lookup to end, either way
    link = runs.find("1")
    assert link is not None and link.run_id in trained.stdout
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    anonymous = create_app({"MLFLOW_TRACKING_URI": mlflow_url}).extensions["webui.runs"]
    anonymous.wait = 30
    assert anonymous.find("1") is None  # without the password, no link (and no error)
