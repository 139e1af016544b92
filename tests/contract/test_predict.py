"""POST :predict: row and columnar requests, both signatures, b64 values, version routing."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from contract import (
    CANARY_LABEL,
    DIGIT_OUTPUT,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    NORMALIZED_OUTPUT,
    PIXELS_INPUT,
    PROBABILITIES_OUTPUT,
    STABLE_LABEL,
)

pytestmark = pytest.mark.contract

# Whole bodies, known exactly: half_plus_two computes y = x/2 + 2 in float32.
EXACT = [
    ({"instances": [1.0, 2.0, 5.0]}, {"predictions": [2.5, 3.0, 4.5]}),
    ({"signature_name": "serving_default", "inputs": [1.0, 2.0]}, {"outputs": [2.5, 3.0]}),
    ({"inputs": {"x": [3.0]}}, {"outputs": [3.5]}),
    ({"instances": [0.1]}, {"predictions": [2.05]}),  # printed as TF Serving prints float32
    ({"signature_name": "multi", "instances": [{"a": 1.5, "b": 2.0}, {"a": -1.0, "b": 0.5}]},
     {"predictions": [{"sum": 3.5, "rounded": 2}, {"sum": -0.5, "rounded": -1}]}),
    ({"signature_name": "multi", "inputs": {"a": [1.5, -1.0], "b": [2.0, 0.5]}},
     {"outputs": {"sum": [3.5, -0.5], "rounded": [2, -1]}}),
    ({"signature_name": "echo", "instances": [{"b64": "aGVsbG8="}, "hi"]},
     {"predictions": [{"length": 5, "text_bytes": {"b64": "aGVsbG8="}},
                      {"length": 2, "text_bytes": {"b64": "aGk="}}]}),
    ({"signature_name": "echo", "inputs": [{"b64": "AAH/"}]},
     {"outputs": {"length": [3], "text_bytes": [{"b64": "AAH/"}]}}),
]


@pytest.mark.parametrize("request_body,expected", EXACT)
def test_predict_whole_body(api, request_body, expected):
    r = api.predict("half_plus_two", request_body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == expected


@pytest.mark.parametrize("version", [1, None])
def test_predict_by_version_or_latest(api, version):
    r = api.predict("half_plus_two", {"instances": [4.0]}, version=version)
    assert r.json() == {"predictions": [4.0]}


def png(pixels: np.ndarray, dark_on_light: bool = True) -> dict:
    image = 255 - pixels if dark_on_light else pixels
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return {"b64": base64.b64encode(buffer.getvalue()).decode()}


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:8]


def check_answers(answers: list[dict], count: int) -> None:
    assert len(answers) == count
    for answer in answers:
        probabilities = answer[PROBABILITIES_OUTPUT]
        assert len(probabilities) == 10
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert answer[DIGIT_OUTPUT] == int(np.argmax(probabilities))


def test_pixels_rows_and_columns_agree(api, digits):
    rows = api.predict("mnist", {"instances": [{PIXELS_INPUT: d.tolist()} for d in digits]})
    columns = api.predict("mnist", {"inputs": {PIXELS_INPUT: digits.tolist()}})
    assert rows.status_code == columns.status_code == 200
    check_answers(rows.json()["predictions"], len(digits))
    by_column = columns.json()["outputs"]
    assert [r[DIGIT_OUTPUT] for r in rows.json()["predictions"]] == by_column[DIGIT_OUTPUT]
    np.testing.assert_allclose([r[PROBABILITIES_OUTPUT] for r in rows.json()["predictions"]],
                               by_column[PROBABILITIES_OUTPUT], atol=1e-6)


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_png_through_predict_image(api, digits, dark_on_light):
    body = {"signature_name": IMAGE_SIGNATURE,
            "instances": [{IMAGE_INPUT: png(d, dark_on_light)} for d in digits[:3]]}
    r = api.predict("mnist", body)
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    check_answers(answers, 3)
    for answer in answers:
        normalized = np.array(answer[NORMALIZED_OUTPUT])
        assert normalized.shape == (28, 28)
        assert normalized.max() > 100  # light ink on dark, whichever way the PNG was drawn


@pytest.mark.parametrize("label,version", [(STABLE_LABEL, 1), (CANARY_LABEL, 2)])
def test_label_routes_like_its_version(api, digits, label, version):
    body = {"instances": digits[:2].tolist()}
    by_label = api.predict("mnist", body, label=label)
    by_version = api.predict("mnist", body, version=version)
    assert by_label.status_code == by_version.status_code == 200
    assert by_label.json() == by_version.json()


def test_concurrent_requests_all_succeed(api, digits):
    url = f"{api.url}/v1/models/mnist:predict"
    body = {"instances": digits[:4].tolist()}
    with ThreadPoolExecutor(16) as pool:  # one connection per request, 16 at a time
        codes = list(pool.map(lambda _: requests.post(url, json=body, timeout=30).status_code,
                              range(48)))
    assert codes == [200] * 48
