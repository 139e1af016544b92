"""Hostile but fair requests: huge batches and bodies, odd JSON, and a queue of waiting clients.

TF Serving with serving/batching.config refuses a request of more rows than max_batch_size
(32) and answers 400 to JSON it cannot turn into the signature's tensors; ours must too, and
keep its memory while doing it (the suite's server runs with --enable_batching and that file).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import requests
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from contract import IMAGE_INPUT, IMAGE_SIGNATURE, PIXELS_INPUT
from serving.config import MAX_REQUEST_BYTES
from tests.contract.test_predict import png
from tests.support.servers import free_port, model_available, process

pytestmark = pytest.mark.contract

MAX_BATCH = 32  # serving/batching.config
ZERO_ROW = json.dumps([[0] * 28] * 28)
MIB = 1024 * 1024


def rows_body(count: int) -> bytes:
    return ('{"instances": [' + ",".join([ZERO_ROW] * count) + "]}").encode()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_a_batch_over_max_batch_size_is_refused_as_tf_serving_does(api):
    ok = api.post("/v1/models/mnist:predict", rows_body(MAX_BATCH))
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["predictions"]) == MAX_BATCH
    r = api.post("/v1/models/mnist:predict", rows_body(MAX_BATCH + 1))
    assert r.status_code == 400
    assert r.json() == {"error": f"Task size {MAX_BATCH + 1} is larger than maximum input "
                                 f"batch size {MAX_BATCH}"}
    columns = api.predict("mnist", {"inputs": [[[0] * 28] * 28] * (MAX_BATCH + 1)})
    assert columns.status_code == 400
    assert "Task size 33 is larger than maximum input batch size 32" in columns.json()["error"]


def test_huge_requests_are_refused_and_memory_stays_bounded(api, target):
    if not target.local:
        pytest.skip("reads the memory of our own server's process")
    huge = rows_body(20000)  # the report's request: 47 MB, which once grew the server 4.6 GiB
    r = api.post("/v1/models/mnist:predict", huge)
    assert r.status_code == 413
    assert f"larger than the limit of {MAX_REQUEST_BYTES} bytes" in r.json()["error"]
    largest = rows_body((MAX_REQUEST_BYTES - 64) // (len(ZERO_ROW) + 1))
    assert len(largest) <= MAX_REQUEST_BYTES
    full = rows_body(MAX_BATCH)
    api.post("/v1/models/mnist:predict", full)  # warm: the 32-row shape is traced once
    started = rss_bytes(target.pid)
    for _ in range(10):
        refused = api.post("/v1/models/mnist:predict", largest)
        assert refused.status_code == 400
        assert "is larger than maximum input batch size" in refused.json()["error"]
        assert api.post("/v1/models/mnist:predict", full).status_code == 200
    grown = rss_bytes(target.pid) - started
    assert grown < 200 * MIB, f"the server grew {grown / MIB:.0f} MiB"


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_INSTANCE = '{"instances": [' + "[" * 900 + "0" + "]" * 900 + "]}"
CASES = [
    ("JSON nested 100k deep", '{"instances": ' + DEEP_JSON + "}", "JSON Parse error"),
    ("an instance nested 900 deep", DEEP_INSTANCE, ""),
    ("a pixel of 2**64", '{"instances": [' + ZERO_ROW.replace("0", "18446744073709551616", 1)
     + "]}", "Cannot convert JSON value: 18446744073709551616 to float"),
    ("a pixel of true", '{"instances": [' + ZERO_ROW.replace("0", "true", 1) + "]}",
     "Type: True is not of expected type: float"),
    ("a pixel of 5,000 digits", '{"instances": [' + ZERO_ROW.replace("0", "9" * 5000, 1)
     + "]}", "JSON Parse error"),
    ("a flat [784] instance", '{"instances": [' + json.dumps([0] * 784) + "]}", ""),
    ("a [27,28] instance", '{"instances": [' + json.dumps([[0] * 28] * 27) + "]}", ""),
]


@pytest.mark.parametrize("body,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_odd_bodies_get_tf_servings_400(api, body, message):
    r = api.post("/v1/models/mnist:predict", body)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/json")
    assert set(r.json()) == {"error"}
    assert message in r.json()["error"]
    for python in ("RecursionError", "TypeError", "ValueError", "Traceback"):
        assert python not in r.json()["error"]


def test_a_queue_of_waiting_requests_logs_one_warning_not_one_per_request(api, target, mnist):
    if not target.local:
        pytest.skip("reads our own server's log")
    body = {"signature_name": IMAGE_SIGNATURE,
            "instances": [{IMAGE_INPUT: png(mnist.x_test[0])}] * 8}

    def one(_):
        return requests.post(f"{api.url}/v1/models/mnist:predict", json=body, timeout=60)

    before = target.log.read_text().count("Task queue depth")
    with ThreadPoolExecutor(64) as pool:  # far more clients than the server has threads
        codes = [r.status_code for r in pool.map(one, range(192))]
    assert codes == [200] * 192
    time.sleep(0.2)  # the log is written by the server's process
    log = target.log.read_text()
    assert "Task queue depth" in log  # the clients did queue up
    assert log.count("Task queue depth") - before <= 3


GARBAGE = {"b64": base64.b64encode(b"not an image, just bytes").decode()}


def test_a_bad_image_fails_only_its_own_request(api, rpc, mnist, target):
    """64 concurrent requests, every fourth undecodable: batched together, yet only the bad
    ones fail, each with its own 400 (REST) or INVALID_ARGUMENT (gRPC)."""
    if not target.local:
        pytest.skip("TF Serving fails every request of the batch a bad image joined; "
                    "ours, on purpose, only the bad one (serving/README.md)")
    good = png(mnist.x_test[0])
    bodies = [GARBAGE if i % 4 == 3 else good for i in range(64)]

    def rest(image: dict) -> int:
        body = {"signature_name": IMAGE_SIGNATURE, "instances": [{IMAGE_INPUT: image}]}
        return requests.post(f"{api.url}/v1/models/mnist:predict", json=body,
                             timeout=60).status_code

    def by_grpc(image: dict):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.model_spec.signature_name = IMAGE_SIGNATURE
        request.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto(
            [base64.b64decode(image["b64"])], dtype=tf.string))
        try:
            rpc.predict.Predict(request, timeout=60)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(64) as pool:
        codes = list(pool.map(rest, bodies))
        grpc_codes = list(pool.map(by_grpc, bodies))
    assert codes == [400 if b is GARBAGE else 200 for b in bodies]
    assert grpc_codes == [grpc.StatusCode.INVALID_ARGUMENT if b is GARBAGE
                          else grpc.StatusCode.OK for b in bodies]


def peak_growth(pid: int, send) -> int:
    """How far the process's peak RSS (VmHWM) rose above its RSS while `send()` ran."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    started = rss_bytes(pid)
    send()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 - started
    raise AssertionError(f"no VmHWM for process {pid}")


def png_bomb() -> bytes:
    """A one-bit PNG of 12000x12000 pixels in ~17 KB: its header is all it takes to refuse it."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_small_requests_that_claim_huge_tensors_are_refused_in_bounded_memory(api, rpc, target):
    if not target.local:
        pytest.skip("reads the memory of our own server's process")
    claim = predict_pb2.PredictRequest()  # 45 bytes claiming 10**8 floats
    claim.model_spec.name = "mnist"
    claim.inputs[PIXELS_INPUT].dtype = types_pb2.DT_FLOAT
    claim.inputs[PIXELS_INPUT].float_val.append(0.0)
    claim.inputs[PIXELS_INPUT].tensor_shape.dim.extend(
        tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in (1, 10000, 10000))
    bomb = png_bomb()
    assert len(bomb) < 32 * 1024
    image = predict_pb2.PredictRequest()
    image.model_spec.name = "mnist"
    image.model_spec.signature_name = IMAGE_SIGNATURE
    image.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto([bomb], dtype=tf.string))
    codes, errors = [], []

    def send():
        for request in (claim, image):
            with pytest.raises(grpc.RpcError) as caught:
                rpc.predict.Predict(request, timeout=60)
            codes.append(caught.value.code())
        body = {"signature_name": IMAGE_SIGNATURE,
                "instances": [{IMAGE_INPUT: {"b64": base64.b64encode(bomb).decode()}}]}
        r = api.predict("mnist", body)
        codes.append(r.status_code)
        errors.append(r.json()["error"])

    grown = peak_growth(target.pid, send)
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 2 + [400]
    assert "12000x12000 pixels is more than the limit" in errors[0]
    assert grown < 64 * MIB, f"the server's peak memory grew {grown / MIB:.0f} MiB"


SLOW_CLIENTS = 150  # more than waitress's default connection_limit of 100
RECEIVE_TIMEOUT_S = 2


def test_clients_trickling_requests_neither_freeze_the_port_nor_hold_it(target):
    """150 clients that send a request's start, then a byte every half second: the port keeps
    answering, and each of them gets a 408 once its request has taken 2 s."""
    if not target.local:
        pytest.skip("starts our own server with a short --rest_api_receive_timeout_in_ms")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "serving", "--host=127.0.0.1", "--port=0",
            f"--rest_api_port={port}", "--model_name=half_plus_two",
            f"--model_base_path={target.models_dir / 'half_plus_two'}",
            "--file_system_poll_wait_seconds=0",
            f"--rest_api_receive_timeout_in_ms={RECEIVE_TIMEOUT_S * 1000}"]
    with process(args, lambda: model_available(url, "half_plus_two"), "python -m serving"):
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_CLIENTS)]
        try:
            for client in slow:
                client.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            health = requests.get(f"{url}/v1/models/half_plus_two", timeout=2)
            assert health.status_code == 200
            answers = {}
            while len(answers) < SLOW_CLIENTS and time.monotonic() - started < 10:
                for index, client in enumerate(slow):
                    if index not in answers:
                        try:
                            client.sendall(b"X")
                        except OSError:  # the server closed it
                            answers[index] = b""
                time.sleep(0.5)
                for index, client in enumerate(slow):
                    if index not in answers:
                        client.setblocking(False)
                        with contextlib.suppress(BlockingIOError):
                            answers[index] = client.recv(4096)
            took = time.monotonic() - started
        finally:
            for client in slow:
                client.close()
    assert len(answers) == SLOW_CLIENTS, f"{SLOW_CLIENTS - len(answers)} still open after 10 s"
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers.values() if a)
    assert RECEIVE_TIMEOUT_S <= took < RECEIVE_TIMEOUT_S + 4
