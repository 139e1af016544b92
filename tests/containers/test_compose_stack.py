"""The real docker-compose.yml on a real Docker engine: build, start, use, restart, promote.

Runs the stack from a throw-away copy of the working tree, so ./mlruns, ./models and
./models/models.config are the copy's. The compose file is rewritten only in what a machine
without a bridge network lacks (tests/containers/docker_env.py: `host_network`), and
tfserving runs our own image (SERVING_IMAGE) when tensorflow/serving cannot be pulled.
The first champion is tiny (TRAIN_ARGS), so the whole test takes a few minutes once the
images are cached. The stack's services listen on the host's loopback on their real ports
(5000, 8080, 8501), which must be free.

    make test-containers            # or: pytest -m containers tests/containers
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from contract import (
    CHAMPION_ALIAS,
    GRPC_PORT,
    IMAGE_SIGNATURE,
    MLFLOW_PORT,
    MODEL_NAME,
    REST_PORT,
    SERVING_SIGNATURE,
    STABLE_LABEL,
    TEST_ACCURACY_TAG,
    WEBUI_PORT,
)
from tests.compose import composefile
from tests.containers import docker_env
from tests.containers.docker_env import REPORT
from tests.support.ci import fail_in_ci_else_skip
from tests.support.images import png as encode_png

pytestmark = pytest.mark.containers

# The first champion, trained by `up`: small enough for CI, good enough to tell apart from
# chance. The gate is not what this test is about, so it is low.
TRAIN_ARGS = "--model convnet --epochs 1 --train-limit 2000 --min-accuracy 0.3"
SECOND_RUN = ["train", "--model", "convnet", "--epochs", "1", "--train-limit", "2000"]
# --force: the second tiny model may score below the first; promoting it anyway is the point.
PROMOTE_FLAGS = ["--min-accuracy", "0.3", "--force"]
SERVICES = ("mlflow", "trainer", "tfserving", "webui")
LONG_RUNNING = ("mlflow", "tfserving", "webui")
HEALTHY_WITHIN_S = 240
PROMOTION_VISIBLE_WITHIN_S = 120
MLFLOW = f"http://127.0.0.1:{MLFLOW_PORT}"
TFS = f"http://127.0.0.1:{REST_PORT}"
WEBUI = f"http://127.0.0.1:{WEBUI_PORT}"


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    project: str
    compose_file: Path
    images: dict[str, str] = field(default_factory=dict)  # service -> image

    def compose(self, *args: str, timeout: float = 900, check: bool = True):
        result = subprocess.run(
            ["docker-compose", "-f", str(self.compose_file), "-p", self.project, *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} exited {result.returncode}:\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{self.logs()}")
        return result

    def docker(self, *args: str, timeout: float = 120) -> str:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=True).stdout.strip()

    def logs(self, tail: int = 40) -> str:
        out = subprocess.run(
            ["docker-compose", "-f", str(self.compose_file), "-p", self.project, "logs",
             "--no-color", f"--tail={tail}"],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120)
        return out.stdout[-6000:]

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).stdout.strip()
        assert cid, f"no {service} container"
        return cid

    def state(self, service: str, template: str) -> str:
        return self.docker("inspect", "-f", template, self.container(service))

    def wait_healthy(self, services=LONG_RUNNING, within: float = HEALTHY_WITHIN_S) -> None:
        deadline = time.monotonic() + within
        for service in services:
            while (health := self.state(service, "{{.State.Health.Status}}")) != "healthy":
                if health == "unhealthy" or time.monotonic() > deadline:
                    pytest.fail(f"{service} is {health} after {within:.0f} s\n{self.logs()}")
                time.sleep(1)


def _ports_in_use() -> list[int]:
    busy = []
    for port in (MLFLOW_PORT, REST_PORT, GRPC_PORT, WEBUI_PORT):
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def _write_env(root: Path, mnist_dir: Path, serving_image: str | None, tag: str) -> None:
    """The copy's .env: .env.example, then what the test changes."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=composefile.ROOT,
                            capture_output=True, text=True).stdout.strip()
    values = composefile.read_env_file()
    values.update(DIGITOPS_TAG=tag, MNIST_DIR=str(mnist_dir.resolve()), TRAIN_ARGS=TRAIN_ARGS,
                  DRAWN_DIGITS_PER_DIGIT="20",
                  GIT_COMMIT=commit)
    if os.geteuid() != 0:  # files the containers write must be ours; as root, chown instead
        values.update(APP_UID=str(os.getuid()), APP_GID=str(os.getgid()))
    if serving_image:
        values["SERVING_IMAGE"] = serving_image
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mnist_dir):
    started_at = time.monotonic()
    env = docker_env.docker_env()
    if not shutil.which("docker-compose", path=env["PATH"]):
        fail_in_ci_else_skip("docker-compose is not installed (apt-get install docker-compose)")
    try:
        started_engine = docker_env.start_engine(env)
    except docker_env.NoEngine as err:
        fail_in_ci_else_skip(str(err))
    root = tmp_path_factory.mktemp("stack")
    project = f"digitopstest{uuid.uuid4().hex[:8]}"
    stack = Stack(root, env, project, root / "docker-compose.host.yml")
    try:
        if busy := _ports_in_use():
            pytest.fail(f"ports {busy} are in use on 127.0.0.1: the stack runs on the host's "
                        "network with its real ports; stop whatever holds them")
        docker_env.ensure_base_image(env)
        docker_env.copy_project(root)
        docker_env.write_host_network_compose(composefile.COMPOSE_FILE, stack.compose_file)
        tag = "containertest"
        official = docker_env.pull(env, docker_env.OFFICIAL_SERVING_IMAGE)
        _write_env(root, mnist_dir, None if official else f"digitops-serving:{tag}", tag)
        if os.geteuid() == 0:
            values = composefile.read_env_file(root / ".env")
            uid, gid = int(values["APP_UID"]), int(values["APP_GID"])
            for folder in ("mlruns", "models", "serving"):
                shutil.chown(root / folder, uid, gid)
                for path in (root / folder).rglob("*"):
                    shutil.chown(path, uid, gid)
        REPORT.append(f"tfserving image: {'tensorflow/serving (pulled)' if official else 'ours'}")

        t = time.monotonic()
        stack.compose("--profile", "serving-image", "build", timeout=1800)
        REPORT.append(f"build every image: {time.monotonic() - t:.0f} s")
        config = composefile.load(composefile.read_env_file(root / ".env"),
                                  path=stack.compose_file)
        stack.images = {name: s["image"] for name, s in config["services"].items()}

        t = time.monotonic()
        stack.compose("up", "-d")
        stack.wait_healthy()
        REPORT.append(f"first up (train and promote the first champion) until healthy: "
                      f"{time.monotonic() - t:.0f} s")
        yield stack
    finally:
        t = time.monotonic()
        stack.compose("--profile", "serving-image", "down", "-v", "--remove-orphans",
                      timeout=300, check=False)
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
            env=env, capture_output=True, text=True).stdout.split()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], env=env, capture_output=True)
        if started_engine:
            docker_env.stop_engine(env)
        shutil.rmtree(root, ignore_errors=True)
        REPORT.append(f"down and clean up{' (engine stopped)' if started_engine else ''}: "
                      f"{time.monotonic() - t:.0f} s")
        REPORT.append(f"container test wall time: {time.monotonic() - started_at:.0f} s")
        assert not left, f"containers were left behind: {left}"


# --- helpers -----------------------------------------------------------------------------------


def _champion() -> dict:
    reply = requests.get(f"{MLFLOW}/api/2.0/mlflow/registered-models/alias",
                         params={"name": MODEL_NAME, "alias": CHAMPION_ALIAS}, timeout=10)
    reply.raise_for_status()
    return reply.json()["model_version"]


def _versions() -> list[dict]:
    reply = requests.get(f"{MLFLOW}/api/2.0/mlflow/model-versions/search",
                         params={"filter": f"name='{MODEL_NAME}'"}, timeout=10)
    reply.raise_for_status()
    return reply.json().get("model_versions", [])


def _ui_predict(png: bytes) -> dict:
    reply = requests.post(f"{WEBUI}/api/predict",
                          json={"image": base64.b64encode(png).decode()}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _published(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "models" / MODEL_NAME).iterdir() if p.name.isdigit())


# --- the checks, in the order a user meets them ------------------------------------------------


def test_images_are_built_and_the_web_ui_carries_no_tensorflow(stack):
    for service in ("mlflow", "trainer", "serving", "webui"):
        size = int(stack.docker("image", "inspect", "-f", "{{.Size}}", stack.images[service]))
        REPORT.append(f"image {stack.images[service]}: {size / 1e6:.0f} MB")
    probe = ("import importlib.util as u, pathlib, sys; "
             "found = [m for m in ('tensorflow', 'tensorflow_cpu', 'keras') if u.find_spec(m)]; "
             "found += [str(p) for d in ('/opt', '/usr') "
             "for p in pathlib.Path(d).rglob('libtensorflow*')]; "
             "print(found); sys.exit(bool(found))")
    out = subprocess.run(["docker", "run", "--rm", "--network", "host", "--entrypoint",
                          "python", stack.images["webui"], "-c", probe],
                         env=stack.env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"the web UI image contains TensorFlow: {out.stdout}{out.stderr}"


def test_trainer_runs_once_and_exits_0(stack):
    state = stack.state("trainer", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}")
    assert state == "exited 0 0"
    assert len(_versions()) == 1
    assert _published(stack.root) == [_champion()["version"]]


def test_long_running_services_are_healthy(stack):
    for service in LONG_RUNNING:
        assert stack.state(service, "{{.State.Health.Status}}") == "healthy"


def test_mlflow_runs_without_its_job_runner(stack):
    """The job runner serves GenAI features this stack does not use, as 8 more processes."""
    processes = stack.docker("top", stack.container("mlflow"))
    assert "mlflow server" in processes
    assert "huey" not in processes and "_job_runner" not in processes, processes


def test_web_ui_answers_with_the_champion_version(stack, mnist):
    answer = _ui_predict(encode_png(mnist.x_test[0]))
    assert answer["model"]["name"] == MODEL_NAME
    assert answer["model"]["version"] == _champion()["version"]
    assert answer["digit"] in range(10) and len(answer["probabilities"]) == 10


def test_mlflow_rest_api_lists_the_run_and_the_registered_model(stack):
    champion = _champion()
    run = requests.get(f"{MLFLOW}/api/2.0/mlflow/runs/get",
                       params={"run_id": champion["run_id"]}, timeout=10)
    assert run.status_code == 200, run.text
    experiment_id = run.json()["run"]["info"]["experiment_id"]
    assert run.json()["run"]["info"]["status"] == "FINISHED"
    found = requests.post(f"{MLFLOW}/api/2.0/mlflow/runs/search",
                          json={"experiment_ids": [experiment_id]}, timeout=10).json()
    assert champion["run_id"] in [r["info"]["run_id"] for r in found["runs"]]
    model = requests.get(f"{MLFLOW}/api/2.0/mlflow/registered-models/get",
                         params={"name": MODEL_NAME}, timeout=10).json()["registered_model"]
    assert model["name"] == MODEL_NAME
    assert model["aliases"] == [{"alias": CHAMPION_ALIAS, "version": champion["version"]}]


def test_tf_serving_predicts_from_pixels_and_from_a_png(stack, mnist):
    champion = _champion()
    url = f"{TFS}/v1/models/{MODEL_NAME}/labels/{STABLE_LABEL}:predict"
    count, batch = 192, 32  # serving/batching.config: max_batch_size 32, as TF Serving enforces
    digits = []
    for start in range(0, count, batch):
        reply = requests.post(url, json={
            "signature_name": SERVING_SIGNATURE,
            "instances": [{"pixels": image.tolist()}
                          for image in mnist.x_test[start:start + batch]]}, timeout=60)
        assert reply.status_code == 200, reply.text
        digits += [p["digit"] for p in reply.json()["predictions"]]
    right = sum(int(d == y) for d, y in zip(digits, mnist.y_test[:count], strict=True))
    served_accuracy = right / count
    tags = {t["key"]: t["value"] for t in champion.get("tags", [])}
    recorded = float(tags[TEST_ACCURACY_TAG])
    assert abs(served_accuracy - recorded) < 0.15, (served_accuracy, recorded)

    png = encode_png(mnist.x_test[0])
    reply = requests.post(url, json={
        "signature_name": IMAGE_SIGNATURE,
        "instances": [{"image": {"b64": base64.b64encode(png).decode()}}]}, timeout=60)
    assert reply.status_code == 200, reply.text
    prediction = reply.json()["predictions"][0]
    assert prediction["digit"] == _ui_predict(png)["digit"]
    assert len(prediction["normalized"]) == 28


def test_no_container_runs_as_root(stack):
    for service in SERVICES:
        user = stack.state(service, "{{.Config.User}}")
        assert user and user.split(":")[0] not in ("0", "root"), f"{service} runs as {user!r}"
    for service in LONG_RUNNING:
        uid = stack.docker("exec", stack.container(service), "id", "-u")
        assert uid != "0", f"{service} runs as root"


# What each image must write in the checkout, and a command that exits 0 once it could.
WRITERS = {"mlflow": ["db", "upgrade", "sqlite:////mlruns/mlflow.db"], "trainer": ["--help"]}


@pytest.mark.parametrize("service", sorted(WRITERS))
def test_a_checkout_owned_by_another_uid_stops_at_once_naming_app_uid(stack, service, tmp_path):
    """Issue 12, defect 5, through compose: the wrong APP_UID stops with what to set; the
    owner's APP_UID works (MLflow creates its database)."""
    owner = 4242 if os.geteuid() == 0 else os.getuid()  # only root can give folders away
    stranger = 1000 if owner != 1000 else 1001
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(stack.compose_file, checkout)
    shutil.copy(stack.root / ".env", checkout)
    for folder in ("mlruns", "models", "serving"):
        (checkout / folder).mkdir(mode=0o755)
        os.chown(checkout / folder, owner, owner)
    project = f"{stack.project}uid"

    def run(uid: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-f", str(checkout / stack.compose_file.name), "-p", project,
             "run", "--rm", "--no-deps", "-T", service, *WRITERS[service]],
            cwd=checkout, env={**stack.env, "APP_UID": str(uid), "APP_GID": str(uid)},
            capture_output=True, text=True, timeout=300)

    try:
        refused = run(stranger)
        assert refused.returncode == 78, refused.stdout + refused.stderr
        assert f"APP_UID={owner} APP_GID={owner}" in refused.stderr, refused.stderr
        assert f"belongs to uid:gid {owner}:{owner}" in refused.stderr, refused.stderr
        assert list((checkout / "mlruns").iterdir()) == []

        accepted = run(owner)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        if service == "mlflow":
            database = checkout / "mlruns" / "mlflow.db"
            assert database.stat().st_uid == owner
    finally:
        subprocess.run(["docker-compose", "-f", str(checkout / stack.compose_file.name), "-p",
                        project, "down", "-v"], cwd=checkout, env=stack.env,
                       capture_output=True, timeout=120)


def test_state_survives_down_and_up_and_the_trainer_skips(stack, mnist):
    champion = _champion()["version"]
    stack.compose("down")
    assert (stack.root / "mlruns" / "mlflow.db").is_file()
    assert (stack.root / "models" / MODEL_NAME / champion / "saved_model.pb").is_file()

    t = time.monotonic()
    stack.compose("up", "-d")
    stack.wait_healthy()
    REPORT.append(f"second up (trainer skips) until healthy: {time.monotonic() - t:.0f} s")
    assert stack.state("trainer", "{{.State.ExitCode}}") == "0"
    assert len(_versions()) == 1, "the trainer trained again although a champion exists"
    assert _published(stack.root) == [champion]
    assert _ui_predict(encode_png(mnist.x_test[0]))["model"]["version"] == champion


def test_a_new_run_promoted_reaches_the_ui_without_restarting_tf_serving(stack, mnist):
    before = stack.state("tfserving", "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}")
    old = _champion()["version"]

    t = time.monotonic()
    stack.compose("run", "--rm", "-T", "trainer", *SECOND_RUN)
    new = str(max(int(v["version"]) for v in _versions()))
    assert new != old and new in _published(stack.root)
    stack.compose("run", "--rm", "-T", "trainer", "promote", "--version", new, *PROMOTE_FLAGS)
    assert _champion()["version"] == new

    deadline = time.monotonic() + PROMOTION_VISIBLE_WITHIN_S
    png = encode_png(mnist.x_test[0])
    while (answered := _ui_predict(png)["model"]["version"]) != new:
        assert time.monotonic() < deadline, f"the UI still answers with v{answered}"
        time.sleep(1)
    REPORT.append(f"train, promote, and the UI answers with v{new}: "
                  f"{time.monotonic() - t:.0f} s")
    assert stack.state("tfserving", "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}") == before
