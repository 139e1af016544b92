"""Every error in DESIGN.md: TF Serving's status code and `{"error": ...}` message."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.contract

HPT = "/v1/models/half_plus_two"

# (method, path, body, status, a substring of the error message)
CASES = [
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", f"{HPT}/versions/9", None, 404, "Could not find version 9 of model half_plus_two"),
    ("GET", "/v1/models/mnist/labels/nope", None, 400,
     "Unrecognized servable version label: nope"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/nope:predict", '{"instances": [1]}', 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", f"{HPT}/versions/9:predict", '{"instances": [1]}', 404,
     "Servable not found for request: Specific(half_plus_two, 9)"),
    ("POST", "/v1/models/mnist/labels/nope:predict", '{"instances": [1]}', 400,
     "Unrecognized servable version label: nope"),
    ("POST", f"{HPT}:predict", '{"signature_name": "nope", "instances": [1]}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", f"{HPT}:predict", "instances = [1, 2]", 400, "JSON Parse error"),
    ("POST", f"{HPT}:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", f"{HPT}:predict", '{"instances": [1], "inputs": [1]}', 400,
     "expecting only one of 'inputs' or 'instances' keys to exist"),
    ("POST", f"{HPT}:predict", '{"signature_name": "serving_default"}', 400,
     "Missing 'inputs' or 'instances' key"),
    ("POST", f"{HPT}:predict", '{"instances": []}', 400, "No values in 'instances' array"),
    ("POST", f"{HPT}:predict", '{"instances": ["x"]}', 400, "is not of expected type: float"),
    ("POST", f"{HPT}:predict", '{"signature_name": 100, "instances": [1]}', 400,
     "'signature_name' key must be a string value."),
    ("POST", f"{HPT}:predict", '{"instances": [1, [2]]}', 400, "Expecting shape"),
    ("POST", f"{HPT}:predict", '{"signature_name": "multi", "instances": [1]}', 400,
     "expecting list of objects"),
    ("POST", f"{HPT}:predict", '{"signature_name": "multi", "inputs": {"a": [1]}}', 400,
     "Missing named input: b"),
    ("POST", f"{HPT}:predict", '{"signature_name": "echo", "instances": [{"b64": "!"}]}', 400,
     "base64"),
    ("POST", f"{HPT}:predict", '{"instances": [1, true]}', 400,
     "Type: True is not of expected type: float"),
    ("POST", f"{HPT}:predict", '{"instances": [' + "9" * 5000 + "]}", 400, "JSON Parse error"),
    ("POST", f"{HPT}/versions/{'9' * 5000}:predict", '{"instances": [1]}', 400,
     "Failed to convert version"),
    ("GET", f"{HPT}/versions/{'9' * 5000}", None, 400, "Failed to convert version"),
    ("GET", f"{HPT}/versions/{'0' * 5000}9", None, 404, "Could not find version 9"),
    ("GET", "/v1/models", None, 400, "Missing model name"),
    ("GET", f"{HPT}:predict", None, 400, "Malformed request"),
    ("GET", "/v1/foo", None, 400, "Malformed request"),
]


@pytest.mark.parametrize("method,path,body,status,message", CASES,
                         ids=[f"{c[0]} {c[1][:50]} {c[3]} {c[4][:30]}" for c in CASES])
def test_error(api, method, path, body, status, message):
    r = api.get(path) if method == "GET" else api.post(path, body)
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("application/json")
    assert set(r.json()) == {"error"}
    assert message in r.json()["error"]


def test_wrong_pixels_shape_is_a_client_error(api):
    r = api.predict("mnist", {"instances": [[[0.0] * 27] * 28]})
    assert r.status_code == 400
    assert set(r.json()) == {"error"}
