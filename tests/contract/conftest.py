"""Find or start the TF Serving under test, serving the contract model repository.

With TF_SERVING_URL set, the suite runs against that server (e.g. the real
tensorflow/serving container), which must serve the folder that
`python -m tests.contract.repository DIR` wrote, with `--enable_batching` and
serving/batching.config; set TF_SERVING_MODELS_DIR=DIR too, or the tests that publish new
versions are skipped, and TF_SERVING_GRPC_TARGET=host:port for its gRPC API. Without
TF_SERVING_URL, the suite builds the repository in a temp folder and starts
`python -m serving` on free loopback ports, REST and gRPC.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from contract import serving_version
from tests.contract import repository
from tests.support.servers import ROOT, free_port, process, wait_until

MODELS = ("half_plus_two", "hot_reload", "broken", "mnist")
BATCHING_CONFIG = ROOT / "serving" / "batching.config"


@dataclass(frozen=True)
class Target:
    url: str
    models_dir: Path | None  # where versions can be published; None when unknown
    local: bool  # our `python -m serving`, not a server given by TF_SERVING_URL
    grpc_target: str | None = None  # host:port of its gRPC API; None when unknown
    pid: int | None = None  # our server's process (local only)
    log: Path | None = None  # our server's log (local only)


def all_available(url: str) -> bool:
    for model in MODELS:
        r = requests.get(f"{url}/v1/models/{model}", timeout=2)
        if not (r.ok and serving_version(r.json()["model_version_status"])):
            return False
    return True


@pytest.fixture(scope="session")
def target(tmp_path_factory, mnist_dir):
    url = os.environ.get("TF_SERVING_URL")
    if url:
        url = url.rstrip("/")
        models_dir = os.environ.get("TF_SERVING_MODELS_DIR")
        try:
            wait_until(lambda: all_available(url), 60, f"TF_SERVING_URL={url}")
        except TimeoutError:
            pytest.fail(f"TF_SERVING_URL={url} does not serve {', '.join(MODELS)}: start it on "
                        "the models.config that `python -m tests.contract.repository DIR` writes")
        yield Target(url, Path(models_dir) if models_dir else None, local=False,
                     grpc_target=os.environ.get("TF_SERVING_GRPC_TARGET"))
        return
    root = tmp_path_factory.mktemp("contract-models")
    config = repository.build(root, mnist_dir)
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "serving.log"
    args = [sys.executable, "-m", "serving", "--host=127.0.0.1", f"--port={grpc_port}",
            f"--rest_api_port={port}", f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
            f"--monitoring_config_file={ROOT / 'serving' / 'monitoring.config'}",
            "--enable_batching", f"--batching_parameters_file={BATCHING_CONFIG}",
            "--refuse_reload_config_requests=false",  # test_grpc calls it as on TF Serving
            # a flag of the official server that ours accepts and ignores
            "--rest_api_timeout_in_ms=30000"]
    with process(args, lambda: all_available(url), "python -m serving", timeout=120,
                 log=log) as proc:
        yield Target(url, root, local=True, grpc_target=f"127.0.0.1:{grpc_port}",
                     pid=proc.pid, log=log)


class Api:
    """Small helper over one pooled session: `api.predict("mnist", body, label="stable")`."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url + path, timeout=30)

    def post(self, path: str, data: bytes | str) -> requests.Response:
        return self.session.post(self.url + path, data=data, timeout=30,
                                 headers={"Content-Type": "application/json"})

    def predict(self, model: str, body: dict, version: int | None = None,
                label: str | None = None) -> requests.Response:
        return self.session.post(self.url + model_path(model, version, label) + ":predict",
                                 json=body, timeout=30)

    def status(self, model: str) -> dict[str, dict]:
        """Version -> status entry (a server may omit nothing: all versions it has seen)."""
        r = self.get(f"/v1/models/{model}")
        r.raise_for_status()
        return {v["version"]: v for v in r.json()["model_version_status"]}


def model_path(model: str, version: int | None = None, label: str | None = None) -> str:
    path = f"/v1/models/{model}"
    if version is not None:
        path += f"/versions/{version}"
    if label is not None:
        path += f"/labels/{label}"
    return path


@pytest.fixture(scope="session")
def api(target) -> Api:
    return Api(target.url)


class Grpc:
    """Stubs of both gRPC services over one channel: `rpc.predict.Predict(request)`."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target)
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)


@pytest.fixture(scope="session")
def rpc(target) -> Grpc:
    if target.grpc_target is None:
        pytest.fail("TF_SERVING_URL is set but TF_SERVING_GRPC_TARGET is not: give the gRPC "
                    "address (host:port) of the same server")
    stubs = Grpc(target.grpc_target)
    grpc.channel_ready_future(stubs.channel).result(timeout=30)
    yield stubs
    stubs.channel.close()
