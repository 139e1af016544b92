"""`make up` with a real Prometheus (Debian's, on PATH): it scrapes the stack it came with.

Started as tests/stack/test_make_up.py starts `make up` (a copy of the checkout, free ports, a
small first model), plus PROMETHEUS_PORT. A few predictions through the web UI must show in
Prometheus as the UI's request rate; every alert rule and dashboard query must evaluate.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from devstack.ports import is_taken
from tests.stack.test_make_up import (
    MARK,
    STOP_TIMEOUT,
    TRAIN_ARGS,
    VENV,
    Ports,
    Stack,
    copy_checkout,
    stop_leftovers,
    wait_ready,
)
from tests.support.images import canvas_png
from tests.support.servers import ROOT, free_port
from tests.support.tools import tool

pytestmark = pytest.mark.e2e

PREDICTIONS = 5
REQUEST_RATE = 'sum(rate(webui_http_requests_total{endpoint="api.predict"}[1m]))'
PREDICTED = 'sum(webui_http_requests_total{endpoint="api.predict",status="200"})'
SCRAPE_WAIT = 60  # seconds: a few 5 s scrapes, on a slow CI machine


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, mnist_dir):
    """`make up` on free ports with Prometheus on PATH; (stack, Prometheus URL)."""
    prometheus = tool("prometheus")
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    ports = Ports.free()
    prometheus_port = free_port()
    while prometheus_port in vars(ports).values():
        prometheus_port = free_port()
    mark = uuid.uuid4().hex
    env = {**os.environ, **ports.env(), "PROMETHEUS_PORT": str(prometheus_port),
           "PATH": f"{os.path.dirname(prometheus)}:{os.environ['PATH']}",
           "MNIST_DIR": str(mnist_dir), "TRAIN_ARGS": TRAIN_ARGS, "TRAIN_PROFILE": "quick",
           MARK: mark}
    env.pop("MONITORING", None)
    output = tmp_path_factory.mktemp("make-up") / "output.txt"
    make = ["make", "-o", f"{VENV}/.installed", f"VENV={VENV}", "up"]
    with open(output, "wb") as out:
        proc = subprocess.Popen(make, cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(proc, ports, output, mark, checkout)
    try:
        wait_ready(stack)
        yield stack, f"http://127.0.0.1:{prometheus_port}"
    finally:
        stop_leftovers(stack)


def query(prometheus: str, expr: str) -> list:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_prometheus_starts_fifth_and_names_its_url(monitored):
    stack, prometheus = monitored
    text = stack.text()
    assert re.search(r"^\[5/5\] prometheus .*\(log mlruns/logs/prometheus\.log\)$", text, re.M)
    port = prometheus.rsplit(":", 1)[1]
    assert re.search(rf"^\[5/5\] prometheus +ready in [\d.]+s \(pid \d+\): "
                     rf"http://localhost:{port}$", text, re.M), text


def wait_for(prometheus: str, expr: str, wanted=lambda value: value > 0) -> float:
    """The value of `expr` once `wanted(value)`; fail after SCRAPE_WAIT seconds."""
    deadline = time.monotonic() + SCRAPE_WAIT
    while time.monotonic() < deadline:
        result = query(prometheus, expr)
        if result and wanted(float(result[0]["value"][1])):
            return float(result[0]["value"][1])
        time.sleep(1)
    pytest.fail(f"{expr} never got there in {SCRAPE_WAIT}s: {query(prometheus, expr)}")


def test_the_ui_request_rate_shows_after_a_few_predictions(monitored, mnist):
    stack, prometheus = monitored
    image = base64.b64encode(canvas_png(mnist.x_test[0])).decode()

    def predict():
        answer = requests.post(f"http://127.0.0.1:{stack.ports.webui}/api/predict",
                               json={"image": image}, timeout=30)
        assert answer.status_code == 200, answer.text

    # A counter's first sample is where rate() starts: let Prometheus see the series once,
    # then the rest of the predictions are an increase it can rate.
    predict()
    wait_for(prometheus, PREDICTED)
    for _ in range(PREDICTIONS - 1):
        predict()
    wait_for(prometheus, PREDICTED, lambda value: value == PREDICTIONS)
    assert wait_for(prometheus, REQUEST_RATE) > 0


def test_every_target_is_up(monitored):
    _, prometheus = monitored
    targets = requests.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    assert health == {"tfserving": "up", "webui": "up", "mlflow": "up"}, targets


def test_the_alert_rules_load_and_every_query_evaluates(monitored):
    _, prometheus = monitored
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    rules = yaml.safe_load((ROOT / "monitoring/rules/digitops.yml").read_text())["groups"]
    expected = {rule.get("alert") or rule["record"] for group in rules for rule in group["rules"]}
    assert set(loaded) == expected
    assert set(loaded.values()) <= {"ok", "unknown"}  # unknown: not evaluated yet
    board = json.loads((ROOT / "monitoring/grafana/dashboards/digitops.json").read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    exprs += [rule["expr"] for group in rules for rule in group["rules"]]
    for expr in exprs:
        query(prometheus, expr)


def test_ctrl_c_stops_prometheus_too(monitored):
    stack, prometheus = monitored
    os.killpg(stack.proc.pid, signal.SIGINT)
    stack.proc.wait(STOP_TIMEOUT)
    assert "Stopping prometheus, webui, serving, mlflow..." in stack.text()
    assert not is_taken(int(prometheus.rsplit(":", 1)[1]))
