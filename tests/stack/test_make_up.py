"""`make up` for real: MLflow, the trainer, TF Serving and the web UI as local processes.

It runs in a copy of this checkout (tracked and new files, the same virtual environment), so the
developer's ./mlruns and ./models are never touched, on free ports, with a small first model
(TRAIN_ARGS). The tests below run in order against one stack; then one stops it the way
Ctrl-C does, with SIGINT to make's whole process group, and checks that nothing is left; the
last ones start `make up | tee` again in the same checkout and end it every other way.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devstack.ports import is_taken
from tests.support.images import canvas_png
from tests.support.servers import ROOT, free_port, until_linked

pytestmark = pytest.mark.e2e

VENV = Path(sys.prefix)  # the environment running the tests runs the stack too
# Small enough to train in well under a minute on two cores, good enough to pass a 0.5 gate.
TRAIN_ARGS = "--model convnet --train-limit 2000 --epochs 1 --min-accuracy 0.5"
READY_TIMEOUT = 360  # seconds: MLflow's first start, training, TensorFlow's import, on slow CI
STOP_TIMEOUT = 45  # seconds from Ctrl-C until make has exited
MARK = "DIGITOPS_STACK_TEST_MARK"  # inherited by every process the stack starts


def copy_checkout(dest: Path) -> Path:
    """Copy this checkout's files, tracked and new but not ignored, into `dest`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a deleted-but-tracked file is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@dataclass(frozen=True)
class Ports:
    mlflow: int
    rest: int
    grpc: int
    webui: int

    @classmethod
    def free(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        return cls(*sorted(ports))

    def env(self) -> dict[str, str]:
        """The variables `make up` (and docker compose) take the ports from."""
        return {"MLFLOW_PORT": str(self.mlflow), "TF_SERVING_REST_PORT": str(self.rest),
                "TF_SERVING_GRPC_PORT": str(self.grpc), "WEBUI_PORT": str(self.webui)}


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries `MARK=mark`: everything the stack started."""
    needle = f"{MARK}={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()  # empty for a zombie
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


@dataclass
class Stack:
    proc: subprocess.Popen
    ports: Ports
    output: Path
    mark: str
    checkout: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def wait_ready(stack: Stack) -> str:
    """Wait for the `Ready.` line; fail with make's output if it exits or takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        text = stack.text()
        if re.search(r"^Ready\.$", text, re.M):
            return text
        if stack.proc.poll() is not None:
            pytest.fail(f"make up exited with {stack.proc.returncode} before it was ready:\n"
                        f"{text}")
        time.sleep(0.5)
    pytest.fail(f"make up was not ready after {READY_TIMEOUT}s:\n{stack.text()}")


def stop_leftovers(stack: Stack) -> None:
    """Teardown safety net: whatever a failed test left running, end it."""
    if stack.proc.poll() is None:
        os.killpg(stack.proc.pid, signal.SIGINT)
        try:
            stack.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait()
    if Path("/proc").is_dir():
        for pid in marked_processes(stack.mark):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mnist_dir):
    """`make up` in a copy of the checkout, on free ports, until the `Ready.` line."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: it is the front door (apt-get install make)")
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    make = ["make", "-o", f"{VENV}/.installed", f"VENV={VENV}", "up"]
    # -o: the environment is installed already; never let make reinstall it from here.
    recipe = subprocess.run([*make, "-n"], cwd=checkout, capture_output=True, text=True)
    if "-m devstack up" not in recipe.stdout:
        pytest.fail("The Makefile's `up` target must run `$(PY) -m devstack up`; `make -n up` "
                    f"printed:\n{recipe.stdout}{recipe.stderr}")
    ports = Ports.free()
    mark = uuid.uuid4().hex
    env = {**os.environ, **ports.env(), "MNIST_DIR": str(mnist_dir), "TRAIN_ARGS": TRAIN_ARGS,
           "TRAIN_PROFILE": "quick", MARK: mark,
           "MONITORING": "off"}  # the four roles; tests/stack/test_prometheus.py adds the fifth
    output = tmp_path_factory.mktemp("make-up") / "output.txt"
    with open(output, "wb") as out:
        proc = subprocess.Popen(make, cwd=checkout, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(proc, ports, output, mark, checkout)
    try:
        wait_ready(stack)
        yield stack
    finally:
        stop_leftovers(stack)


@pytest.fixture(scope="module")
def digit(mnist):
    """The first MNIST test image: its label, its pixels, and a 280x280 dark-on-light PNG."""
    pixels = mnist.x_test[0]
    return int(mnist.y_test[0]), pixels, canvas_png(pixels)


def test_up_shows_progress_and_the_three_urls(stack):
    text = stack.text()
    for number, role in enumerate(("mlflow", "trainer", "serving", "webui"), 1):
        assert re.search(rf"^\[{number}/4\] {role} .*\(log mlruns/logs/{role}\.log\)$", text,
                         re.M), text
    assert re.search(r"^\[2/4\] trainer +done in [\d.]+s$", text, re.M), text
    assert "trained and promoted mnist v1" in text  # the trainer's own output, shown
    assert re.search(r"^\[4/4\] webui +ready in [\d.]+s \(pid \d+\)", text, re.M), text
    assert f"http://localhost:{stack.ports.webui}" in text
    # MLflow's links open on the runs and the registry, not on its GenAI pages.
    assert re.search(rf"^  MLflow +http://localhost:{stack.ports.mlflow}/#/experiments/\d+/runs"
                     r"\?workflowType=machine_learning$", text, re.M), text
    assert f"http://localhost:{stack.ports.mlflow}/#/models/mnist" in text
    assert f"http://localhost:{stack.ports.rest}/v1/models/mnist" in text
    assert (stack.checkout / "models" / "models.config").is_file()
    assert (stack.checkout / "mlruns" / "mlflow.db").is_file()


def test_ui_predicts_with_the_served_version(stack, digit):
    _, _, png = digit
    response = requests.post(f"http://127.0.0.1:{stack.ports.webui}/api/predict",
                             json={"image": base64.b64encode(png).decode()}, timeout=30)
    assert response.status_code == 200, response.text
    body = until_linked(lambda: requests.post(f"http://127.0.0.1:{stack.ports.webui}/api/predict",
                                              json={"image": base64.b64encode(png).decode()},
                                              timeout=30).json())
    assert body["model"]["version"] == "1"
    assert body["model"]["label"] == "stable"
    assert body["digit"] in range(10) and len(body["probabilities"]) == 10
    run = body["model"]["run"]
    assert run is not None and run["url"].startswith(f"http://localhost:{stack.ports.mlflow}/")


def test_mlflow_registry_and_run_behind_version_1(stack, digit):
    api = f"http://127.0.0.1:{stack.ports.mlflow}/api/2.0/mlflow"
    model = requests.get(f"{api}/registered-models/get", params={"name": "mnist"}, timeout=10)
    assert model.status_code == 200, model.text
    aliases = {a["alias"]: a["version"] for a in model.json()["registered_model"]["aliases"]}
    assert aliases["champion"] == "1"
    version = requests.get(f"{api}/model-versions/get", params={"name": "mnist", "version": "1"},
                           timeout=10).json()["model_version"]
    run = requests.get(f"{api}/runs/get", params={"run_id": version["run_id"]},
                       timeout=10).json()["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]}["train_limit"] == "2000"
    ui = until_linked(lambda: requests.post(f"http://127.0.0.1:{stack.ports.webui}/api/predict",
                                            json={"image": base64.b64encode(digit[2]).decode()},
                                            timeout=30).json())
    assert ui["model"]["run"]["run_id"] == version["run_id"]  # the UI names the same run


def test_rest_predict_on_the_serving_port(stack, digit):
    _, pixels, _ = digit
    response = requests.post(
        f"http://127.0.0.1:{stack.ports.rest}/v1/models/mnist/labels/stable:predict",
        json={"instances": [pixels.astype(float).tolist()]}, timeout=30)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["digit"] in range(10)
    assert sum(prediction["probabilities"]) == pytest.approx(1, abs=1e-4)


def listening_addresses(pids: list[int]) -> set[str]:
    """host:port of every TCP socket in LISTEN state held by `pids`, read from /proc."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                hex_host, hex_port = fields[1].split(":")
                packed = bytes.fromhex(hex_host)
                # /proc writes each 32-bit word in host (little-endian) order
                host = ipaddress.ip_address(b"".join(packed[i:i + 4][::-1]
                                                     for i in range(0, len(packed), 4)))
                found.add(f"{host}:{int(hex_port, 16)}")
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or 127.x written as an IPv4-mapped IPv6 address (::ffff:7f00:1)."""
    address = ipaddress.ip_address(host)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def test_every_listening_socket_is_on_loopback(stack):
    addresses = listening_addresses(marked_processes(stack.mark))
    ports = {int(address.rsplit(":", 1)[1]) for address in addresses}
    assert {stack.ports.mlflow, stack.ports.rest, stack.ports.webui} <= ports, addresses
    assert all(_loopback(address.rsplit(":", 1)[0]) for address in addresses), addresses


def test_a_killed_role_is_restarted(stack, digit):
    (serving_pid,) = re.findall(r"^\[3/4\] serving .*\(pid (\d+)\)", stack.text(), re.M)
    os.kill(int(serving_pid), signal.SIGKILL)
    deadline = time.monotonic() + READY_TIMEOUT
    while "serving is back: ready in" not in stack.text():
        assert time.monotonic() < deadline and stack.proc.poll() is None, stack.text()
        time.sleep(0.5)
    text = stack.text()
    assert "serving was killed by SIGKILL; restarting it in 1s (restart 1 of 5)" in text, text
    test_rest_predict_on_the_serving_port(stack, digit)
    test_ui_predicts_with_the_served_version(stack, digit)


def test_ctrl_c_stops_every_process(stack):
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", stack.text())]
    assert len(pids) == 3  # mlflow, serving, webui
    started = time.monotonic()
    os.killpg(stack.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    stack.proc.wait(STOP_TIMEOUT)
    took = time.monotonic() - started
    text = stack.text()
    # GNU make re-raises SIGINT once its recipe has exited; had the recipe failed, make
    # would have said "Error N".
    assert stack.proc.returncode == -signal.SIGINT, text
    assert "] Error" not in text, text
    assert "Stopping webui, serving, mlflow..." in text
    assert text.rstrip().endswith("Stopped; nothing is left running."), text
    assert took < 30, f"stopping took {took:.0f}s"
    assert [pid for pid in pids if _alive(pid)] == []
    if Path("/proc").is_dir():
        assert marked_processes(stack.mark) == []
    for port in (stack.ports.mlflow, stack.ports.rest, stack.ports.webui):
        assert not is_taken(port), f"port {port} is still in use"
    assert not (stack.checkout / "mlruns" / "logs" / "devstack.pid").exists()


def end_by(how: str, proc: subprocess.Popen, checkout: Path) -> None:
    """End `make up | tee` the way a user would: Ctrl-C, closing the terminal, kill -9."""
    if how == "sigkill":
        devstack = int((checkout / "mlruns" / "logs" / "devstack.pid").read_text())
        os.kill(devstack, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGHUP)


@pytest.mark.parametrize("how", ["ctrl-c", "sighup", "sigkill"])
def test_roles_die_with_devstack_however_it_ends(stack, how):
    """`make up 2>&1 | tee`: Ctrl-C ends tee too, so devstack's prints fail as it stops."""
    assert stack.proc.poll() is not None, "runs after test_ctrl_c_stops_every_process"
    output = stack.output.with_name(f"tee-{how}.txt")
    output.touch()  # tee opens it only once bash has started the pipeline
    make = f"make -o {VENV}/.installed VENV={VENV} up 2>&1 | tee {output}"
    env = {**os.environ, **stack.ports.env(), MARK: stack.mark}
    proc = subprocess.Popen(["bash", "-c", make], cwd=stack.checkout, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    again = Stack(proc, stack.ports, output, stack.mark, stack.checkout)
    try:
        wait_ready(again)
        end_by(how, proc, stack.checkout)
        proc.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while marked_processes(stack.mark) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert marked_processes(stack.mark) == [], again.text()
        for port in (stack.ports.mlflow, stack.ports.rest, stack.ports.webui):
            assert not is_taken(port), f"port {port} is still in use"
    finally:
        stop_leftovers(again)
    down = subprocess.run([sys.executable, "-m", "devstack", "down"], cwd=stack.checkout,
                          capture_output=True, text=True, timeout=60)
    assert "No stack started by `make up` is running here" in down.stdout, down


def _alive(pid: int) -> bool:
    """True for a running process; False for a gone one or a zombie awaiting its reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:  # gone since, or a system without /proc
        return not Path("/proc").is_dir()


def test_up_refuses_a_taken_port_and_starts_nothing(tmp_path):
    checkout = copy_checkout(tmp_path)
    ports = Ports.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.rest))
        squatter.listen()
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "devstack", "up"], cwd=checkout,
                                env={**os.environ, **ports.env()}, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 1, result
    assert (f"port {ports.rest} (TF Serving REST) is taken" in result.stderr
            and "TF_SERVING_REST_PORT=<port> make up" in result.stderr), result.stderr
    assert "Nothing was started." in result.stderr
    assert result.stdout == ""
    assert not (checkout / "mlruns" / "logs").exists()
    assert time.monotonic() - started < 20
