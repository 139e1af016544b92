"""TF Serving's JSON tensor encoding, without a server or a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serving.errors import ServingError
from serving.tensors import STRING, Format, parse_body, to_array, to_body, to_inputs

F32, I64 = np.dtype(np.float32), np.dtype(np.int64)


@pytest.mark.parametrize("value,expected", [
    (0.1, 0.1),  # six digits round-trip: written short
    (2.05, 2.05),
    (1 / 3, 0.333333343),  # they do not: nine digits, as TF Serving's WriteDecimal
    (3.0, 3.0), (1e-5, 1e-05), (float("inf"), float("inf")),
])
def test_floats_are_written_like_tf_serving(value, expected):
    body = to_body({"y": np.array([value], dtype=np.float32)}, Format.ROW)
    assert json.loads(json.dumps(body)) == {"predictions": [expected]}


def test_rows_with_several_outputs_are_objects_and_bytes_outputs_are_b64():
    outputs = {"n": np.array([1, 2]), "raw_bytes": np.array([b"\x00", b"ab"], dtype=object),
               "text": np.array([b"a", b"b"], dtype=object)}
    assert to_body(outputs, Format.ROW) == {"predictions": [
        {"n": 1, "raw_bytes": {"b64": "AA=="}, "text": "a"},
        {"n": 2, "raw_bytes": {"b64": "YWI="}, "text": "b"}]}
    assert to_body({"n": np.array([[1, 2]])}, Format.COLUMNAR) == {"outputs": [[1, 2]]}


def test_rows_are_batched_along_a_new_first_dimension():
    inputs, fmt = to_inputs({"instances": [[1, 2], [3, 4], [5, 6]]}, {"x": F32})
    assert fmt is Format.ROW
    assert inputs["x"].dtype == F32 and inputs["x"].shape == (3, 2)


def test_b64_values_become_bytes():
    inputs, _ = to_inputs({"instances": [{"b64": "aGk="}, "yo"]}, {"s": STRING})
    assert inputs["s"].tolist() == [b"hi", b"yo"]


@pytest.mark.parametrize("value,dtype,message", [
    ([1, "2"], F32, "is not of expected type: float"),
    ([1.5], I64, "is not of expected type: int64"),
    ([True], F32, "is not of expected type: float"),
    ([16777217], F32, "without loss of precision"),
    ([[1, 2], [3]], F32, "Encountered list at unexpected size"),
    ([[1, 2], 3], F32, "found at incorrect level"),
    ([{"b64": "%%"}], STRING, "Unable to base64 decode"),
    ([{"text": "x"}], STRING, "not formatted correctly for base64 data"),
])
def test_bad_values_are_invalid_arguments(value, dtype, message):
    with pytest.raises(ServingError) as caught:
        to_array(value, dtype)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert message in caught.value.message


@pytest.mark.parametrize("body,message", [
    (b"", "JSON Parse error: The document is empty"),
    (b"{", "JSON Parse error"),
    (b"[]", "Is not object"),
])
def test_bodies_that_are_not_json_objects(body, message):
    with pytest.raises(ServingError) as caught:
        parse_body(body)
    assert message in caught.value.message
    assert caught.value.http_status == 400


def test_the_vectorized_float_writer_matches_python_formatting():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.random(20000) * 255, rng.random(20000), rng.standard_normal(20000) * 1e-3,
        10.0 ** rng.uniform(-12, 12, 20000) * rng.choice([-1, 1], 20000),
        [0.1, 1e-5, 1e-7, 999999.5, 9.9999995, 0.30000001, 1e-4, 1e-3, 123456.789],
    ]).astype(np.float32)
    body = to_body({"y": values}, Format.ROW)["predictions"]
    slow = []
    for v in values.tolist():
        short = float(f"{v:.6g}")
        slow.append(short if np.float32(short) == np.float32(v) else float(f"{v:.9g}"))
    assert body == slow
