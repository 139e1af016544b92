"""TF Serving's gRPC API (PredictionService, ModelService) through tensorflow-serving-api's stubs.

The same cases as the REST tests, so both APIs of one server are held to one contract: status,
metadata, predict by version and label, the errors with their gRPC codes, a hot reload, and
REST and gRPC giving the same numbers for the same input.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from contract import (
    CANARY_LABEL,
    DIGIT_OUTPUT,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    PIXELS_INPUT,
    PROBABILITIES_OUTPUT,
    STABLE_LABEL,
)
from serving import models_config
from serving.config import MAX_REQUEST_BYTES
from tests.contract import repository
from tests.contract.test_predict import png
from tests.contract.test_reload import newest, wait_for
from tests.support.servers import ROOT, free_port, model_available, process

pytestmark = pytest.mark.contract

AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")


def spec(request, model: str, version: int | None = None, label: str | None = None,
         signature: str = ""):
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.model_spec.signature_name = signature
    return request


def predict_request(model: str, inputs: dict, **choice) -> predict_pb2.PredictRequest:
    request = spec(predict_pb2.PredictRequest(), model, **choice)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def outputs(response) -> dict[str, np.ndarray]:
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def status(rpc, model: str, **choice) -> dict[int, get_model_status_pb2.ModelVersionStatus]:
    request = spec(get_model_status_pb2.GetModelStatusRequest(), model, **choice)
    return {s.version: s for s in rpc.models.GetModelStatus(request, timeout=30)
            .model_version_status}


def test_status(rpc):
    versions = status(rpc, "half_plus_two")
    assert list(versions) == [1]
    assert versions[1].state == AVAILABLE
    assert versions[1].status.error_code == 0
    assert status(rpc, "half_plus_two", version=1)[1].state == AVAILABLE
    assert {1, 2} <= set(status(rpc, "mnist"))


@pytest.mark.parametrize("label,version", [(STABLE_LABEL, 1), (CANARY_LABEL, 2)])
def test_status_by_label(rpc, label, version):
    assert status(rpc, "mnist", label=label)[version].state == AVAILABLE


def test_metadata_matches_rest(rpc, api):
    request = spec(get_model_metadata_pb2.GetModelMetadataRequest(), "mnist", label=STABLE_LABEL)
    request.metadata_field.append("signature_def")
    response = rpc.predict.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    rest = api.get(f"/v1/models/mnist/labels/{STABLE_LABEL}/metadata").json()
    assert set(signatures.signature_def) == set(
        rest["metadata"]["signature_def"]["signature_def"])
    image = signatures.signature_def[IMAGE_SIGNATURE]
    assert list(image.inputs) == [IMAGE_INPUT]


def test_predict_exact(rpc):
    response = rpc.predict.Predict(
        predict_request("half_plus_two", {"x": np.array([1.0, 2.0, 5.0], np.float32)}),
        timeout=30)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    np.testing.assert_array_equal(outputs(response)["y"], [2.5, 3.0, 4.5])


def test_output_filter_and_strings(rpc):
    request = predict_request("half_plus_two", {"text": np.array([b"hello", b"hi"], object)},
                              signature="echo")
    request.output_filter.append("length")
    response = rpc.predict.Predict(request, timeout=30)
    assert set(response.outputs) == {"length"}
    np.testing.assert_array_equal(outputs(response)["length"], [5, 2])


@pytest.mark.parametrize("label,version", [(STABLE_LABEL, 1), (CANARY_LABEL, 2)])
def test_label_routes_like_its_version(rpc, mnist, label, version):
    pixels = mnist.x_test[:2].astype(np.float32)
    by_label = rpc.predict.Predict(predict_request("mnist", {PIXELS_INPUT: pixels}, label=label),
                                   timeout=30)
    by_version = rpc.predict.Predict(
        predict_request("mnist", {PIXELS_INPUT: pixels}, version=version), timeout=30)
    assert by_label.model_spec.version.value == version
    assert by_label.outputs == by_version.outputs


@pytest.mark.parametrize("signature", ["serving_default", IMAGE_SIGNATURE])
def test_rest_and_grpc_give_the_same_numbers(rpc, api, mnist, signature):
    digits = mnist.x_test[:3]
    if signature == IMAGE_SIGNATURE:
        rest_body = {"signature_name": signature,
                     "instances": [{IMAGE_INPUT: png(d)} for d in digits]}
        feed = {IMAGE_INPUT: np.array([base64.b64decode(png(d)["b64"]) for d in digits], object)}
    else:
        rest_body = {"instances": digits.tolist()}
        feed = {PIXELS_INPUT: digits.astype(np.float32)}
    rest = api.predict("mnist", rest_body, version=1)
    assert rest.status_code == 200, rest.text
    by_grpc = outputs(rpc.predict.Predict(
        predict_request("mnist", feed, version=1, signature=signature), timeout=30))
    rows = rest.json()["predictions"]
    np.testing.assert_array_equal(
        np.array([r[PROBABILITIES_OUTPUT] for r in rows], np.float32),
        by_grpc[PROBABILITIES_OUTPUT])
    assert [r[DIGIT_OUTPUT] for r in rows] == by_grpc[DIGIT_OUTPUT].tolist()


HPT_X = {"x": np.array([1.0], np.float32)}


def raw_request(model: str, name: str, tensor: tensor_pb2.TensorProto, **choice):
    """A PredictRequest with a TensorProto as a client may write it, right or wrong."""
    request = spec(predict_pb2.PredictRequest(), model, **choice)
    request.inputs[name].CopyFrom(tensor)
    return request


def tensor(dtype: int, *dims: int, **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims)
    return proto


SHORT = tensor(types_pb2.DT_FLOAT, 3, tensor_content=np.zeros(2, np.float32).tobytes())

# (request, gRPC code, a substring of the message): the REST contract's errors, over gRPC.
ERRORS = [
    (lambda: predict_request("nope", HPT_X), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (lambda: predict_request("half_plus_two", HPT_X, version=9), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 9)"),
    (lambda: predict_request("mnist", HPT_X, label="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    (lambda: predict_request("half_plus_two", HPT_X, signature="nope"),
     grpc.StatusCode.INVALID_ARGUMENT,
     'Serving signature name: "nope" not found in signature def'),
    (lambda: predict_request("half_plus_two", {"x": np.array(["x"], object)}),
     grpc.StatusCode.INVALID_ARGUMENT, "to be float but string is provided"),
    (lambda: predict_request("half_plus_two", {"a": np.array([1.0], np.float32)},
                             signature="multi"),
     grpc.StatusCode.INVALID_ARGUMENT, "input size does not match signature"),
    (lambda: predict_request("mnist", {PIXELS_INPUT: np.zeros((1, 27, 28), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda: predict_request("mnist", {PIXELS_INPUT: np.zeros((1, 784), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda: predict_request("mnist", {PIXELS_INPUT: np.zeros((33, 28, 28), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, "Task size 33 is larger than maximum input batch size 32"),
    (lambda: raw_request("half_plus_two", "x", tensor(types_pb2.DT_RESOURCE, 1)),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda: raw_request("half_plus_two", "x", tensor(9999, 1)),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda: raw_request("half_plus_two", "x", SHORT), grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda: raw_request("mnist", PIXELS_INPUT, tensor(types_pb2.DT_FLOAT, 1, 10000, 10000,
                                                       float_val=[0.0])),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
]


@pytest.mark.parametrize("make,code,message", ERRORS,
                         ids=[f"{c.name} {m[:40]}" for _, c, m in ERRORS])
def test_predict_errors(rpc, make, code, message):
    with pytest.raises(grpc.RpcError) as caught:
        rpc.predict.Predict(make(), timeout=30)
    assert caught.value.code() == code
    assert message in caught.value.details()


def test_a_refused_call_logs_no_traceback(rpc, target):
    if not target.local:
        pytest.skip("reads our own server's log")
    before = target.log.read_text().count("Traceback")
    for make, _, _ in ERRORS[:2]:
        with pytest.raises(grpc.RpcError):
            rpc.predict.Predict(make(), timeout=30)
    assert target.log.read_text().count("Traceback") == before


@pytest.mark.parametrize("model,choice,code,message", [
    ("nope", {}, grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"),
    ("half_plus_two", {"version": 9}, grpc.StatusCode.NOT_FOUND,
     "Could not find version 9 of model half_plus_two"),
    ("mnist", {"label": "nope"}, grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
])
def test_status_errors(rpc, model, choice, code, message):
    with pytest.raises(grpc.RpcError) as caught:
        status(rpc, model, **choice)
    assert caught.value.code() == code
    assert message in caught.value.details()


def test_metadata_needs_the_signature_def_field(rpc):
    request = spec(get_model_metadata_pb2.GetModelMetadataRequest(), "half_plus_two")
    with pytest.raises(grpc.RpcError) as caught:
        rpc.predict.GetModelMetadata(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_hot_reload_seen_over_grpc(rpc, api, target):
    if target.models_dir is None:
        pytest.skip("set TF_SERVING_MODELS_DIR to the folder TF_SERVING_URL serves from")
    current = newest(api, "hot_reload")
    repository.publish(target.models_dir / "hot_reload", current + 1,
                       repository.half_plus_two(offset=current + 2.0))
    wait_for(lambda: status(rpc, "hot_reload").get(current + 1, None) is not None and
             status(rpc, "hot_reload")[current + 1].state == AVAILABLE, 10,
             f"version {current + 1} AVAILABLE over gRPC")
    response = wait_for(lambda: (r := rpc.predict.Predict(
        predict_request("hot_reload", {"x": np.array([0.0], np.float32)}), timeout=30))
        .model_spec.version.value == current + 1 and r, 10, "the new version answering")
    np.testing.assert_array_equal(outputs(response)["y"], [current + 2.0])


def test_reload_config_request(rpc, target):
    if target.models_dir is None:
        pytest.skip("set TF_SERVING_MODELS_DIR to the folder TF_SERVING_URL serves from")
    config = models_config.read(target.models_dir / "models.config")
    same = model_management_pb2.ReloadConfigRequest(config=config)
    rpc.models.HandleReloadConfigRequest(same, timeout=60)
    assert status(rpc, "half_plus_two")[1].state == AVAILABLE
    bad = model_server_config_pb2.ModelServerConfig()
    bad.CopyFrom(config)
    bad.model_config_list.config.add().CopyFrom(config.model_config_list.config[0])
    with pytest.raises(grpc.RpcError) as caught:
        rpc.models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=bad), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status(rpc, "half_plus_two")[1].state == AVAILABLE


def test_reload_config_requests_are_refused_by_default(target):
    """Anyone who reaches :8500 could unload or relabel the models: by default ours refuses."""
    if not target.local:
        pytest.skip("TF Serving always obeys HandleReloadConfigRequest")
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "serving", "--host=127.0.0.1", f"--port={grpc_port}",
            f"--rest_api_port={port}", "--model_name=half_plus_two",
            f"--model_base_path={target.models_dir / 'half_plus_two'}",
            "--file_system_poll_wait_seconds=0"]
    with process(args, lambda: model_available(url, "half_plus_two"), "python -m serving"):
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            empty = model_server_config_pb2.ModelServerConfig()
            empty.model_config_list.SetInParent()
            with pytest.raises(grpc.RpcError) as caught:
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=empty), timeout=60)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "--refuse_reload_config_requests" in caught.value.details()
        assert model_available(url, "half_plus_two")


@pytest.mark.parametrize("method", ["Classify", "Regress", "MultiInference"])
def test_other_inference_apis_are_unimplemented_here(rpc, target, method):
    if not target.local:
        pytest.skip("TF Serving runs these on classify/regress signatures; ours has none")
    request = {"Classify": classification_pb2.ClassificationRequest,
               "Regress": regression_pb2.RegressionRequest,
               "MultiInference": inference_pb2.MultiInferenceRequest}[method]()
    with pytest.raises(grpc.RpcError) as caught:
        getattr(rpc.predict, method)(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_second_server_on_the_same_grpc_port_stops(target):
    if not target.local:
        pytest.skip("starts our own server beside the one under test")
    grpc_port = target.grpc_target.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--host=127.0.0.1", f"--port={grpc_port}",
         f"--rest_api_port={free_port()}", "--model_name=half_plus_two",
         f"--model_base_path={target.models_dir / 'half_plus_two'}",
         "--file_system_poll_wait_seconds=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"Failed to start server. Error: Failed to bind gRPC to 127.0.0.1:{grpc_port}" in \
        done.stderr


def test_a_message_over_the_size_limit_is_refused(rpc, target):
    if not target.local:
        pytest.skip("TF Serving takes gRPC messages up to 2 GiB; the 16 MiB limit is ours")
    rows = MAX_REQUEST_BYTES // (28 * 28 * 4) + 1
    request = predict_request("mnist", {PIXELS_INPUT: np.zeros((rows, 28, 28), np.float32)})
    with pytest.raises(grpc.RpcError) as caught:
        rpc.predict.Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_readme_grpc_client_runs_as_printed(target):
    text = (ROOT / "serving" / "README.md").read_text()
    client = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(client.splitlines()) <= 10
    done = subprocess.run([sys.executable, "-c", client.replace("localhost:8500",
                                                                target.grpc_target)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    version, digit = done.stdout.split()
    assert (version, digit.strip("[]").isdigit()) == ("1", True)  # stable -> 1 in the suite
