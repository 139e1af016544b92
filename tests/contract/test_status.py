"""Model status and metadata: GET /v1/models/{m}[/versions/{N}|/labels/{L}][/metadata]."""

from __future__ import annotations

import pytest

from contract import (
    CANARY_LABEL,
    DIGIT_OUTPUT,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    NORMALIZED_OUTPUT,
    PIXELS_INPUT,
    PROBABILITIES_OUTPUT,
    SERVING_SIGNATURE,
    STABLE_LABEL,
)

pytestmark = pytest.mark.contract


def available(version: str) -> dict:
    return {"version": version, "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}


@pytest.mark.parametrize("path", [
    "/v1/models/half_plus_two",
    "/v1/models/half_plus_two/versions/1",
])
def test_status_whole_body(api, path):
    r = api.get(path)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"model_version_status": [available("1")]}


def test_status_lists_only_numeric_version_folders(api):
    # mnist/ also holds `.tmp-7` (an unfinished publish) and `notes`: neither is a version.
    assert api.status("mnist") == {"1": available("1"), "2": available("2")}


@pytest.mark.parametrize("label,version", [(STABLE_LABEL, "1"), (CANARY_LABEL, "2")])
def test_status_by_label_shows_the_labelled_version(api, label, version):
    r = api.get(f"/v1/models/mnist/labels/{label}")
    assert r.status_code == 200
    # TF Serving may list every version here; the labelled one must be among them.
    assert available(version) in r.json()["model_version_status"]


def tensor(dtype: str, *dims: int) -> dict:
    return {"dtype": dtype, "tensor_shape": {
        "dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}}


def without_names(signature: dict) -> dict:
    """A signature with graph tensor names dropped: they are the exporter's, not ours."""
    strip = {side: {k: {f: v for f, v in info.items() if f != "name"}
                    for k, info in signature[side].items()} for side in ("inputs", "outputs")}
    return {**signature, **strip}


def test_metadata_whole_body(api):
    r = api.get("/v1/models/half_plus_two/metadata")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "multi", "echo"} <= set(signatures)
    assert without_names(signatures["serving_default"]) == {
        "inputs": {"x": tensor("DT_FLOAT", -1)}, "outputs": {"y": tensor("DT_FLOAT", -1)},
        "method_name": "tensorflow/serving/predict", "defaults": {},
    }
    assert without_names(signatures["echo"])["outputs"] == {
        "length": tensor("DT_INT64", -1), "text_bytes": tensor("DT_STRING", -1)}


@pytest.mark.parametrize("path,version", [
    ("/v1/models/mnist/metadata", "2"),
    ("/v1/models/mnist/versions/1/metadata", "1"),
    (f"/v1/models/mnist/labels/{STABLE_LABEL}/metadata", "1"),
])
def test_mnist_metadata_follows_the_model_contract(api, path, version):
    body = api.get(path).json()
    assert body["model_spec"]["version"] == version
    signatures = {k: without_names(v)
                  for k, v in body["metadata"]["signature_def"]["signature_def"].items()}
    assert signatures[SERVING_SIGNATURE]["inputs"] == {PIXELS_INPUT: tensor("DT_FLOAT", -1, 28, 28)}
    assert signatures[SERVING_SIGNATURE]["outputs"] == {
        PROBABILITIES_OUTPUT: tensor("DT_FLOAT", -1, 10), DIGIT_OUTPUT: tensor("DT_INT64", -1)}
    assert signatures[IMAGE_SIGNATURE]["inputs"] == {IMAGE_INPUT: tensor("DT_STRING", -1)}
    assert signatures[IMAGE_SIGNATURE]["outputs"] == {
        PROBABILITIES_OUTPUT: tensor("DT_FLOAT", -1, 10), DIGIT_OUTPUT: tensor("DT_INT64", -1),
        NORMALIZED_OUTPUT: tensor("DT_FLOAT", -1, 28, 28)}
