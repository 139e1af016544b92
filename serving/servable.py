"""One loaded model version: its SignatureDefs, its callable signatures, and warm-up.

The SignatureDefs come from `saved_model.pb` itself, so metadata shows exactly what TF
Serving shows (tensor names, `__saved_model_init_op` and all); the callables come from
`tf.saved_model.load`. TensorFlow runs concurrent calls of one function safely, so request
threads share a Servable without a lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from contract import WARMUP_FILE
from serving.errors import ServingError, from_exception, invalid
from serving.tensors import STRING, type_name

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"  # tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
SERVE_TAG = "serve"


def _signature_defs(path: Path) -> Mapping[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef map of the `serve` MetaGraph in saved_model.pb."""
    file = path / "saved_model.pb"
    if not file.is_file():
        raise ServingError("NOT_FOUND", "Could not find SavedModel .pb or .pbtxt at supplied "
                                        f"export directory path: {path}")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(file.read_bytes())
    except DecodeError:
        raise ServingError("DATA_LOSS", f"Can't parse {file} as binary proto") from None
    for graph in saved_model.meta_graphs:
        if SERVE_TAG in graph.meta_info_def.tags:
            return graph.signature_def
    raise ServingError("NOT_FOUND", f"Could not find meta graph def matching supplied tags: "
                                    f"{{ {SERVE_TAG} }} in {path}")


def _dtype(tensor_info: meta_graph_pb2.TensorInfo) -> np.dtype:
    dtype = tf.dtypes.as_dtype(tensor_info.dtype)
    return STRING if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)


@dataclass(frozen=True)
class Servable:
    name: str
    version: int
    path: Path
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, tf.types.experimental.ConcreteFunction]
    root: object = field(repr=False, default=None)  # the loaded object that owns the variables

    @classmethod
    def load(cls, name: str, version: int, path: Path, warmup: bool = True) -> Servable:
        """Load a version folder; with `warmup`, replay its warm-up requests before serving."""
        path = Path(path)
        signature_defs = _signature_defs(path)
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        servable = cls(name, version, path, signature_defs, dict(loaded.signatures), loaded)
        if warmup and (path / WARMUP_FILE).is_file():
            servable.warm_up()
        return servable

    def input_specs(self, signature_name: str) -> dict[str, np.dtype]:
        """Input name -> dtype of a signature, or TF Serving's error for an unknown one."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.functions:
            raise invalid(f'Serving signature name: "{name}" not found in signature def')
        return {k: _dtype(v) for k, v in self.signature_defs[name].inputs.items()}

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> None:
        """Refuse inputs whose names, dtypes or shapes the signature does not declare.

        TensorFlow would reshape a flat [784] row into [28, 28] silently, or fail deep in the
        graph; TF Serving's session refuses a feed that does not match the placeholder.
        """
        self.check_feed(signature_name, {
            key: (STRING if array.dtype.kind in "OS" else array.dtype, array.shape)
            for key, array in inputs.items()})

    def check_feed(self, signature_name: str,
                   feed: Mapping[str, tuple[np.dtype | str, tuple[int, ...]]]) -> None:
        """`check_inputs` on each input's (dtype, shape) alone, so that a gRPC tensor is checked
        before it is built. A dtype numpy has no counterpart for (resource) is its name."""
        name = signature_name or DEFAULT_SIGNATURE
        specs = self.input_specs(name)
        if set(feed) != set(specs):
            raise invalid(f"input size does not match signature: {len(feed)}!={len(specs)} "
                          f"len({{{','.join(sorted(feed))}}}) != "
                          f"len({{{','.join(sorted(specs))}}}). Sent extra: "
                          f"{{{','.join(sorted(set(feed) - set(specs)))}}}. Missing but "
                          f"required: {{{','.join(sorted(set(specs) - set(feed)))}}}.")
        for index, key in enumerate(sorted(specs)):
            (actual, shape), dtype = feed[key], specs[key]
            if type_name(actual) != type_name(dtype):
                raise invalid(f"Expects arg[{index}] to be {type_name(dtype)} but "
                              f"{type_name(actual)} is provided")
            declared = self.signature_defs[name].inputs[key].tensor_shape
            if declared.unknown_rank:
                continue
            expected = [d.size for d in declared.dim]
            if len(expected) != len(shape) or any(
                    e not in (-1, a) for e, a in zip(expected, shape, strict=True)):
                raise invalid(f"input tensor {key} has shape {_dims(shape)}, but the "
                              f"signature expects {_dims(expected)}")

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
        """Run one signature on numpy inputs; TensorFlow's errors become ServingErrors."""
        name = signature_name or DEFAULT_SIGNATURE
        self.check_inputs(name, inputs)
        specs = self.input_specs(name)
        function = self.functions[name]
        try:
            tensors = {k: tf.constant(v, dtype=_tf_dtype(specs[k])) for k, v in inputs.items()}
            outputs = function(**tensors)
        except (TypeError, ValueError) as err:  # shapes or dtypes the signature cannot bind
            raise invalid(_binding_message(err)) from None
        except tf.errors.OpError as err:
            raise from_exception(err) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def metadata(self) -> dict:
        """The GetModelMetadata response as TF Serving's REST API writes it."""
        signature_defs = {
            key: json_format.MessageToDict(
                value, preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for key, value in self.signature_defs.items()
        }
        return {
            "model_spec": {"name": self.name, "signature_name": "",
                           "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }

    def warm_up(self) -> None:
        """Replay TF Serving's warm-up records (PredictionLog TFRecords) once each."""
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(str(self.path / WARMUP_FILE)):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if entry.WhichOneof("log_type") != "predict_log":
                continue  # classify/regress warm-ups have no REST counterpart here
            request = entry.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs)
            count += 1
        log.info("Warmed up %s version %d with %d requests", self.name, self.version, count)


def _dims(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _tf_dtype(dtype: np.dtype) -> tf.DType:
    return tf.string if dtype == STRING else tf.as_dtype(dtype)


def _binding_message(err: Exception) -> str:
    """TensorFlow's binding errors are long; keep the first line, which names the problem."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
