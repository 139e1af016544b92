"""MLflow as a team runs it: PostgreSQL for runs and the registry, an S3 bucket for artifacts.

All real: PostgreSQL from Debian on a free port (tests/support/postgres.py), moto's S3 server
(tests/support/s3.py), and `mlflow server` started as `make up` starts it with
MLFLOW_BACKEND_STORE_URI and MLFLOW_ARTIFACTS_DESTINATION set (devstack's mlflow role). Two
small trainings register versions 1 and 2, promote moves `champion`, and the web UI links an
answer to its run in that MLflow. The same trainer step that k8s/ runs after a promotion
(publish_config.py) turns the aliases into models.config.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

from contract import CHAMPION_ALIAS, MODEL_NAME, STABLE_LABEL
from devstack import roles
from devstack.config import StackConfig
from tests.support.images import canvas_png
from tests.support.s3 import CREDENTIALS, s3_server
from tests.support.servers import (
    ROOT,
    free_port,
    local_serving,
    local_webui,
    process,
    until_linked,
)
from training import registry, train
from training.config import Settings

pytestmark = pytest.mark.integration

BUCKET = "digitops-mlflow"
DATABASE = "mlflow"
# Small and quick: the point is where things are stored, not how well the model draws.
TRAINING = {"profile": "quick", "model": "convnet", "train_limit": 2000, "epochs": 1}


def _load_publish_config():
    path = ROOT / "k8s" / "base" / "trainer" / "publish_config.py"
    spec = importlib.util.spec_from_file_location("publish_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


publish_config = _load_publish_config()


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=CREDENTIALS["AWS_DEFAULT_REGION"])


@dataclass(frozen=True)
class Stores:
    mlflow_url: str
    s3_url: str
    database_url: str  # psycopg's form, for looking into the tables

    def s3(self):
        return s3_client(self.s3_url)


@pytest.fixture(scope="module")
def stores(postgres_url, tmp_path_factory):
    """PostgreSQL (a database of its own), an S3 bucket, and `make up`'s MLflow on both."""
    server_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    store_uri = postgres_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    logs = tmp_path_factory.mktemp("logs")
    with s3_server(log=logs / "s3.log") as s3_url:
        s3_client(s3_url).create_bucket(Bucket=BUCKET)
        config = StackConfig(mlflow_port=free_port(), backend_store_uri=store_uri,
                             artifacts_destination=f"s3://{BUCKET}/artifacts")
        role = roles.mlflow(config)
        env = {**role.env, **CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3_url}
        with process(role.args, lambda: role.probe() is not None, "mlflow server", timeout=180,
                     env=env, log=logs / "mlflow.log"):
            yield Stores(f"http://127.0.0.1:{config.mlflow_port}", s3_url,
                         store_uri.replace("postgresql+psycopg://", "postgresql://"))


@pytest.fixture(scope="module")
def settings(stores, tmp_path_factory, mnist_dir) -> Settings:
    root = tmp_path_factory.mktemp("published")
    return Settings(tracking_uri=stores.mlflow_url, models_dir=str(root / "models"),
                    models_config=str(root / "models.config"),
                    serving_base_path=str(root / "models" / MODEL_NAME), data_dir=str(mnist_dir))


@pytest.fixture(scope="module")
def trained(settings):
    """Versions 1 and 2, each trained, registered and published; 1, then 2, the champion."""
    first = train.run(settings, verbose=0, **TRAINING)
    registry.promote(settings, version=first.version, min_accuracy=0.5)
    champion_before = _aliases(settings)
    second = train.run(settings, verbose=0, **{**TRAINING, "seed": 1})
    registry.promote(settings, version=second.version, min_accuracy=0.5, force=True)
    return first, second, champion_before


def _aliases(settings) -> dict[str, str]:
    api = f"{settings.tracking_uri}/api/2.0/mlflow"
    model = requests.get(f"{api}/registered-models/get", params={"name": MODEL_NAME},
                         timeout=10).json()["registered_model"]
    return {a["alias"]: a["version"] for a in model.get("aliases", [])}


def test_versions_are_registered_in_postgresql(stores, trained):
    first, second, _ = trained
    assert (first.version, second.version) == (1, 2)
    with psycopg.connect(stores.database_url) as conn:
        versions = conn.execute("SELECT version, run_id FROM model_versions WHERE name = %s "
                                "ORDER BY version", (MODEL_NAME,)).fetchall()
        runs = conn.execute("SELECT status FROM runs WHERE run_uuid = %s",
                            (second.run_id,)).fetchall()
    assert versions == [(1, first.run_id), (2, second.run_id)]
    assert runs == [("FINISHED",)]


def test_promote_moves_the_champion_alias(stores, settings, trained):
    _, _, before = trained
    assert before == {CHAMPION_ALIAS: "1"}
    assert _aliases(settings) == {CHAMPION_ALIAS: "2"}
    with psycopg.connect(stores.database_url) as conn:
        rows = conn.execute("SELECT alias, version FROM registered_model_aliases").fetchall()
    assert rows == [(CHAMPION_ALIAS, 2)]


def test_artifacts_are_in_the_bucket_and_served_through_mlflow(stores, trained):
    _, second, _ = trained
    keys = [o["Key"] for page in stores.s3().get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="artifacts/") for o in page.get("Contents", [])]
    ours = [k for k in keys if f"/{second.run_id}/" in k]
    assert any(k.endswith(f"/{registry.SAVED_MODEL_ARTIFACT}/saved_model.pb") for k in ours), keys
    # MLflow proxies them: a client lists the run's artifacts without the bucket's keys.
    listing = requests.get(f"{stores.mlflow_url}/api/2.0/mlflow/artifacts/list",
                           params={"run_id": second.run_id}, timeout=30)
    assert listing.status_code == 200, listing.text
    assert registry.SAVED_MODEL_ARTIFACT in {f["path"] for f in listing.json()["files"]}


def test_web_ui_links_each_answer_to_its_run(stores, settings, trained, mnist):
    _, second, _ = trained
    with local_serving(Path(settings.models_config)) as serving_url, \
            local_webui(serving_url, MLFLOW_TRACKING_URI=stores.mlflow_url,
                        MLFLOW_UI_URL=stores.mlflow_url) as ui:
        image = base64.b64encode(canvas_png(mnist.x_test[0])).decode()
        answer = requests.post(f"{ui}/api/predict", json={"image": image}, timeout=30)
        assert answer.status_code == 200, answer.text
        model = until_linked(lambda: requests.post(f"{ui}/api/predict", json={"image": image},
                                                   timeout=30).json())["model"]
    assert (model["version"], model["label"]) == ("2", STABLE_LABEL)
    run = model["run"]
    assert run["run_id"] == second.run_id
    page, _, fragment = run["url"].partition("#")
    assert fragment == (f"/experiments/{run['experiment_id']}/runs/{second.run_id}"
                        "?workflowType=machine_learning")
    index = requests.get(page, timeout=30)
    assert index.status_code == 200 and "<html" in index.text.lower()
    found = requests.get(f"{stores.mlflow_url}/api/2.0/mlflow/runs/get",
                         params={"run_id": run["run_id"]}, timeout=10).json()["run"]
    assert found["info"]["experiment_id"] == run["experiment_id"]


def test_publish_config_writes_the_aliases_into_the_config_map(settings, trained, tmp_path):
    """k8s' trainer step: models.config from the aliases, PATCHed to the Kubernetes API.

    No cluster runs here, so a local HTTPS-less stand-in records the one request the step
    makes; what it sends is what kube-apiserver takes for a merge patch.
    """
    body = publish_config.patch_body(settings)
    text = body["data"]["models.config"]
    assert "versions: 2" in text and 'key: "stable"' in text and "value: 2" in text
    assert Path(settings.models_config).read_text() == text

    received = []

    class Api(BaseHTTPRequestHandler):
        def do_PATCH(self):
            length = int(self.headers["Content-Length"])
            received.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "namespace").write_text("digitops\n")
    (account / "token").write_text("a-token\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status = publish_config.send(body, f"http://127.0.0.1:{server.server_port}", account)
    finally:
        server.shutdown()
    assert status == 200
    ((path, headers, sent),) = received
    assert path == "/api/v1/namespaces/digitops/configmaps/tfserving-config"
    assert headers["Authorization"] == "Bearer a-token"
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert sent == body
