"""TF Serving's JSON tensor encoding: `instances`/`inputs` in, `predictions`/`outputs` out.

Mirrors `tensorflow_serving/util/json_tensor.cc` closely enough that clients, and whole-body
comparisons in tests, cannot tell the difference: the same validation order and messages,
`{"b64": ...}` for binary strings, outputs named `*_bytes` written as b64, and float32
values printed as TF Serving prints them (six significant digits when that round-trips,
else nine). Only numpy is needed here; the TensorFlow call lives in `servable.py`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from enum import Enum
from itertools import chain
from typing import Any

import numpy as np

from serving.errors import ServingError, invalid

STRING = np.dtype(object)  # how a DT_STRING input or output is held: bytes objects

# DataTypeString() names, which TF Serving's messages use.
_TYPE_NAMES = {
    np.dtype(np.float32): "float", np.dtype(np.float64): "double",
    np.dtype(np.int8): "int8", np.dtype(np.int16): "int16", np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64", np.dtype(np.uint8): "uint8", np.dtype(np.uint32): "uint32",
    np.dtype(np.uint64): "uint64", np.dtype(np.bool_): "bool", STRING: "string",
}
_FLOAT_SIGNIFICAND_BITS = {np.dtype(np.float32): 24, np.dtype(np.float64): 53}
_FULL_PRECISION = {np.dtype(np.float32): ".9g", np.dtype(np.float64): ".17g"}
MAX_DIMS = 64  # numpy's limit; TensorFlow's is 254, and no signature here comes near either


class Format(Enum):
    ROW = "instances"  # answered as "predictions"
    COLUMNAR = "inputs"  # answered as "outputs"


def type_name(dtype: np.dtype | str) -> str:
    """TensorFlow's name of a dtype; a dtype numpy lacks (resource) comes as its name."""
    if isinstance(dtype, str):
        return dtype
    return _TYPE_NAMES.get(np.dtype(dtype), str(dtype))


def _show(value: Any, limit: int = 200) -> str:
    """A JSON value for an error message, cut short: requests can hold megabytes."""
    try:
        text = json.dumps(value, separators=(",", ":"))
    except RecursionError:  # nested deeper than json.dumps goes: show its start only
        text = str(value)[:limit + 1]
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def parse_body(body: bytes) -> dict:
    """Parse a request body into a JSON object, with TF Serving's parse errors."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise invalid("JSON Parse error: The document is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        offset = getattr(err, "pos", getattr(err, "start", 0))
        reason = getattr(err, "msg", getattr(err, "reason", str(err)))
        raise invalid(f"JSON Parse error: {reason} at offset: {offset}") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise invalid("JSON Parse error: Number too big to be stored in double") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_show(doc)} Is not object")
    return doc


def signature_name(doc: dict) -> str:
    """The requested signature ("" when absent, which means serving_default)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {_show(doc)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return name


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _type_error(value: Any, dtype: np.dtype) -> ServingError:
    return invalid(f"JSON Value: {_show(value)} Type: {_json_type(value)} "
                   f"is not of expected type: {type_name(dtype)}")


def _scalar(value: Any, dtype: np.dtype) -> Any:
    """Check one leaf value against the tensor's dtype; return it ready for numpy."""
    if dtype == STRING:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict):
            if not _is_b64(value):
                raise invalid(f"JSON Value: {_show(value)} not formatted correctly for "
                              "base64 data")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
        raise _type_error(value, dtype)
    if isinstance(value, dict):
        raise _type_error(value, dtype)
    if dtype == np.bool_:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    if dtype.kind == "f":
        # A Python int may be beyond every numpy integer type (2**64): compare it as is.
        if isinstance(value, int) and abs(value) > (1 << _FLOAT_SIGNIFICAND_BITS[dtype]) - 1:
            raise _lossy(value, dtype)
        _check_lossless(np.asarray(float(value)), dtype)
        return value
    if not isinstance(value, int) or not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
        raise _type_error(value, dtype)
    return value


def _lossy(value: Any, dtype: np.dtype) -> ServingError:
    return invalid(f"Cannot convert JSON value: {_show(value)} to {type_name(dtype)} "
                   "without loss of precision.")


def _check_lossless(values: np.ndarray, dtype: np.dtype) -> None:
    """Refuse integers a float cannot hold exactly and numbers beyond its range."""
    values = np.atleast_1d(values)
    if values.dtype.kind in "iu":
        limit = (1 << _FLOAT_SIGNIFICAND_BITS[dtype]) - 1
        bad = np.abs(values.astype(object)) > limit
    else:
        bad = np.isfinite(values) & (np.abs(values) > np.finfo(dtype).max)
    if np.any(bad):
        raise _lossy(values.ravel()[int(np.argmax(bad.ravel()))].item(), dtype)


def _shape(value: Any) -> list[int]:
    """Dense shape from the first element at each level, as GetDenseTensorShape does."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, shape: list[int], level: int, dtype: np.dtype, out: list) -> None:
    """Walk a nested list, checking every level's size and every leaf's type."""
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid(f"JSON Value: {_show(value)} found at incorrect level: {level + 1} "
                          f"in the JSON DOM. Expected at level: {len(shape)}")
        out.append(_scalar(value, dtype))
        return
    if level >= len(shape):
        raise invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                      f"expected size: {shape[level]}")
    for item in value:
        _fill(item, shape, level + 1, dtype, out)


def _has_bool(value: list, depth: int) -> bool:
    """Whether a rectangular nested list holds a JSON true or false: numpy reads [true, 3]
    as the integers [1, 3], and TF Serving refuses a boolean where a number belongs."""
    leaves = value
    for _ in range(depth - 1):
        leaves = chain.from_iterable(leaves)
    return bool in set(map(type, leaves))


def to_array(value: Any, dtype: np.dtype) -> np.ndarray:
    """Turn one JSON value (scalar or nested lists) into an array of `dtype`."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iuf" and isinstance(value, list):
        # Fast path for big numeric payloads; anything odd takes the checking walk below.
        try:
            quick = np.array(value)
        except ValueError:
            quick = None
        if quick is not None and (quick.dtype.kind in "iu" or
                                  (quick.dtype.kind == "f" and dtype.kind == "f")) \
                and not _has_bool(value, quick.ndim):
            if dtype.kind == "f":
                _check_lossless(quick, dtype)
            elif quick.size and (quick.min() < np.iinfo(dtype).min or
                                 quick.max() > np.iinfo(dtype).max):
                quick = None
            if quick is not None:
                return quick.astype(dtype)
    shape = _shape(value)
    if len(shape) > MAX_DIMS:
        raise invalid(f"JSON Value: {_show(value, 40)} is nested {len(shape)} deep: a tensor "
                      f"has at most {MAX_DIMS} dimensions")
    leaves: list = []
    _fill(value, shape, 0, dtype, leaves)
    if dtype == STRING:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    return np.array(leaves, dtype=dtype).reshape(shape)


def to_inputs(doc: dict, specs: Mapping[str, np.dtype]) -> tuple[dict[str, np.ndarray], Format]:
    """Read `instances` or `inputs` into one array per signature input.

    Args:
        doc: the parsed request.
        specs: input name -> dtype, from the signature being called.
    """
    if not specs:
        raise invalid(f"Failed to get input map for signature: "
                      f"{doc.get('signature_name') or 'DEFAULT'}")
    both = ServingError("INVALID_ARGUMENT", f"JSON Value: {_show(doc)} Not formatted correctly "
                        "expecting only one of 'inputs' or 'instances' keys to exist ")
    if "instances" in doc:
        if "inputs" in doc:
            raise both
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise invalid(f"JSON Value: {_show(doc)} Excepting 'instances' to be an list/array")
        if not rows:
            raise invalid(f"JSON Value: {_show(doc)} No values in 'instances' array")
        return _from_rows(rows, specs), Format.ROW
    if "inputs" in doc:
        return _from_columns(doc["inputs"], specs), Format.COLUMNAR
    raise invalid("Missing 'inputs' or 'instances' key")


def _from_rows(rows: list, specs: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    def is_object(value: Any) -> bool:
        return isinstance(value, dict) and not _is_b64(value)

    names = sorted(specs)
    objects = is_object(rows[0])
    if not isinstance(rows[0], dict) and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if objects != is_object(row):
            raise invalid(f"Expecting {'object' if objects else 'value/list'} but got "
                          f"{'list' if objects else 'object'} at item {index} of input list")
        items = row if objects else {names[0]: row}
        for name, value in items.items():
            try:
                if name not in specs:
                    raise invalid(f"JSON object: does not have named input: {name}")
                item = to_array(value, specs[name])
                if columns[name] and item.shape != columns[name][0].shape:
                    first = columns[name][0]
                    raise invalid(f"Expecting tensor size: {first.size} but got: {item.size}"
                                  if item.size != first.size else
                                  f"Expecting shape {_dims(first.shape)} but got: "
                                  f"{_dims(item.shape)}")
            except ServingError as err:
                where = f" key: {name}" if objects else ""
                raise invalid(f"Failed to process element: {index}{where} of 'instances' "
                              f"list. Error: {err.code}: {err.message}") from None
            columns[name].append(item)
        if objects and set(row) != set(names):
            raise invalid(f"Failed to process element: {index} of 'instances' list. "
                          f"JSON object: {_show(row)} keys must be equal to: {','.join(names)}")
    return {name: _stack(items, specs[name]) for name, items in columns.items()}


def _stack(items: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    if dtype != STRING:
        return np.stack(items)
    # np.stack would nest 0-d object arrays inside the result; concatenate keeps the bytes.
    flat = np.concatenate([item.reshape(-1) for item in items])
    return flat.reshape((len(items), *items[0].shape))


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _from_columns(value: Any, specs: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(specs) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                          "input tensors required as per tensorinfo_map")
        (name, dtype), = specs.items()
        return {name: to_array(value, dtype)}
    arrays = {}
    for name in sorted(specs):
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = to_array(value[name], specs[name])
    return arrays


def _rounded(values: np.ndarray, digits: int) -> np.ndarray:
    """Each float32 value rounded to `digits` significant decimals, as the double nearest
    that decimal (what float(f"{v:.{digits}g}") gives); NaN where this shortcut is unsure.

    Exact, not approximate: a float32 has 24 significant bits and 10**k for k <= 12 fits in
    28 more, so v * 10**k is computed without rounding, np.rint rounds half to even as
    Python's formatting does, and m / 10**k is the double nearest the decimal m * 10**-k.
    """
    magnitude = np.abs(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log10(magnitude))
        scale = digits - 1 - exponent
        # log10 may land on the wrong side of a power of ten: leave those to the slow path
        sure = (scale >= 0) & (scale <= 12) & np.isfinite(magnitude) & (magnitude > 0)
        power = np.where(sure, scale, 0)
        sure &= (magnitude >= 10.0 ** -power * 10 ** (digits - 1) * (1 + 1e-9)) & \
            (magnitude < 10.0 ** -power * 10 ** digits * (1 - 1e-9))
        factor = 10.0 ** power
        rounded = np.copysign(np.rint(magnitude * factor) / factor, values)
    return np.where(sure, rounded, np.nan)


def _float_values(array: np.ndarray) -> np.ndarray:
    """Doubles equal to the decimal text TF Serving writes for each float (WriteDecimal)."""
    values = array.astype(np.float64)
    out = values.copy()
    # Whole numbers below a million print exactly either way (and most pixels are 0).
    todo = np.flatnonzero(~((values == np.floor(values)) & (np.abs(values) < 1e6)))
    if not todo.size:
        return out
    flat, source, given = out.reshape(-1), values.reshape(-1)[todo], array.reshape(-1)[todo]
    if array.dtype == np.float32:  # the outputs of every model here: a vectorized path
        short, full = _rounded(source, 6), _rounded(source, 9)
        exact = short.astype(np.float32) == given
        chosen = np.where(exact, short, full)
        known = ~np.isnan(short) & ~np.isnan(chosen)  # whether short round-trips decides
        flat[todo[known]] = chosen[known]
        todo, source, given = todo[~known], source[~known], given[~known]
    short = np.array([float(f"{v:.6g}") for v in source.tolist()])
    exact = short.astype(array.dtype) == given
    flat[todo[exact]] = short[exact]
    spec = _FULL_PRECISION.get(array.dtype, ".9g")
    flat[todo[~exact]] = [float(format(v, spec)) for v in source[~exact].tolist()]
    return out


def _json_values(name: str, array: np.ndarray) -> Any:
    """Nested lists of JSON-ready values for one output tensor."""
    if array.dtype.kind == "f":
        return _float_values(array).tolist()
    if array.dtype == STRING or array.dtype.kind == "S":
        if name.endswith("_bytes"):
            as_text = [{"b64": base64.b64encode(v).decode()} for v in array.reshape(-1)]
        else:
            as_text = [bytes(v).decode(errors="replace") for v in array.reshape(-1)]
        result = np.empty(len(as_text), dtype=object)
        result[:] = as_text
        return result.reshape(array.shape).tolist()
    return array.tolist()


def to_body(outputs: Mapping[str, np.ndarray], fmt: Format) -> dict:
    """Build the response: `predictions` (one entry per row) or `outputs` (whole tensors)."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    single = len(names) == 1
    if fmt is Format.COLUMNAR:
        columns = {name: _json_values(name, outputs[name]) for name in names}
        return {"outputs": columns[names[0]] if single else columns}
    batch = None
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {shape[0]} "
                          f"expecting: {batch}")
        batch = shape[0]
    columns = {name: _json_values(name, outputs[name]) for name in names}
    if single:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(batch)]}
