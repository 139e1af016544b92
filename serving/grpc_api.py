"""TF Serving's gRPC API on --port: PredictionService and ModelService.

Built on the generated servicers of tensorflow-serving-api, so any client of the official
server (`PredictionServiceStub`, `ModelServiceStub`) works unchanged. It shares everything with
the REST API: the manager's snapshot of versions and labels, the predictor (so REST and gRPC
requests batch together), the metrics and the request size limit. Failures are TF Serving's
canonical codes as gRPC status codes, with the same messages REST answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.batching import Batching, Direct
from serving.config import MAX_IMAGE_PIXELS, MAX_REQUEST_BYTES
from serving.errors import CODE_NAMES, ServingError, from_exception, invalid
from serving.images import check_images
from serving.manager import Manager
from serving.metrics import Metrics
from serving.servable import DEFAULT_SIGNATURE, Servable
from serving.tensors import STRING

log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"


def _choice(spec) -> tuple[int | None, str | None]:
    """A ModelSpec's version or label (None, None: the latest version)."""
    which = spec.WhichOneof("version_choice")
    if which == "version":
        return spec.version.value, None
    if which == "version_label":
        return None, spec.version_label
    return None, None


def _numpy_dtype(tensor: tensor_pb2.TensorProto, name: str) -> np.dtype | str:
    """The dtype a TensorProto claims, as Servable.check_feed takes it."""
    try:
        dtype = tf.dtypes.as_dtype(tensor.dtype)
    except TypeError:  # a number that names no DataType
        raise invalid(f"tensor parsing error: {name}") from None
    if dtype == tf.string:
        return STRING
    return np.dtype(dtype.as_numpy_dtype) if dtype.is_numpy_compatible else dtype.name


def _arrays(servable: Servable, signature: str, tensors: Mapping[str, tensor_pb2.TensorProto],
            max_bytes: int) -> dict[str, np.ndarray]:
    """Build the request's arrays once their dtypes and shapes fit the signature and their size
    the limit: a 45-byte TensorProto may claim [1,10000,10000], which TensorFlow would fill."""
    feed = {}
    for name, tensor in tensors.items():
        shape = tuple(d.size for d in tensor.tensor_shape.dim)
        if tensor.tensor_shape.unknown_rank or any(d < 0 for d in shape):
            raise invalid(f"tensor parsing error: {name}")
        feed[name] = (_numpy_dtype(tensor, name), shape)
    servable.check_feed(signature, feed)
    arrays = {}
    for name, tensor in tensors.items():
        dtype, shape = feed[name]
        size = math.prod(shape) * dtype.itemsize
        if size > max_bytes:
            raise invalid(f"input tensor {name} of shape {list(shape)} takes {size} bytes, more "
                          f"than the limit of {max_bytes} bytes (--max_request_bytes)")
        try:
            arrays[name] = tf.make_ndarray(tensor)
        except (ValueError, TypeError):  # content that does not fill the shape it claims
            raise invalid(f"tensor parsing error: {name}") from None
    return arrays


class _Call:
    """Answer one RPC: run `work`, turn a failure into a gRPC status, record the metrics."""

    def __init__(self, api: GrpcApi, name: str, context: grpc.ServicerContext):
        self.api, self.name, self.context = api, name, context
        self.model, self.version = "", ""

    def run(self, work: Callable[[_Call], object]):
        started = time.perf_counter()
        error = None
        try:
            result = work(self)
        except Exception as err:  # every failure becomes a status, as TF Serving answers
            if not isinstance(err, ServingError):
                log.exception("Unexpected failure answering gRPC %s", self.name)
            error = from_exception(err)
        known = self.model in self.api.manager.model_names()
        self.api.metrics.observe(self.model if known else "", self.version, self.name,
                                 error.code if error else "OK", time.perf_counter() - started)
        if error:
            # abort, not set_code and return None: grpcio logs a traceback for a None reply.
            self.context.abort(getattr(grpc.StatusCode, error.code), error.message)
        return result


class GrpcApi(prediction_service_pb2_grpc.PredictionServiceServicer,
              model_service_pb2_grpc.ModelServiceServicer):
    """Both services over one manager; every method shares REST's rules."""

    def __init__(self, manager: Manager, predictor: Batching | Direct, metrics: Metrics, *,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_image_pixels: int = MAX_IMAGE_PIXELS, allow_reload: bool = False):
        self.manager = manager
        self.allow_reload = allow_reload
        self.predictor = predictor
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes
        self.max_image_pixels = max_image_pixels

    # -- PredictionService ----------------------------------------------------------------

    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802 (gRPC name)
        def work(call: _Call) -> predict_pb2.PredictResponse:
            spec = request.model_spec
            call.model = spec.name
            servable = self.manager.servable(spec.name, *_choice(spec))
            call.version = str(servable.version)
            signature = spec.signature_name or DEFAULT_SIGNATURE
            servable.input_specs(signature)  # an unknown signature fails before any decoding
            for tensor in request.inputs.values():  # refuse a huge batch before decoding it
                if tensor.tensor_shape.dim:
                    self.predictor.admit(tensor.tensor_shape.dim[0].size)
            inputs = _arrays(servable, signature, request.inputs, self.max_request_bytes)
            check_images(inputs, self.max_image_pixels)
            outputs = self.predictor.predict(servable, signature, inputs)
            wanted = list(request.output_filter) or sorted(outputs)
            for name in wanted:
                if name not in outputs:
                    raise invalid(f"output tensor alias not found in signature: {name} Outputs "
                                  f"expected to be in the set {{{','.join(sorted(outputs))}}}.")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature
            for name in wanted:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
            return response

        return _Call(self, "predict", context).run(work)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def work(call: _Call) -> get_model_metadata_pb2.GetModelMetadataResponse:
            spec = request.model_spec
            call.model = spec.name
            if not request.metadata_field:
                raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_FIELD:
                    raise invalid(f"Metadata field {field} is not supported")
            servable = self.manager.servable(spec.name, *_choice(spec))
            call.version = str(servable.version)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for key, value in servable.signature_defs.items():
                signatures.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
            return response

        return _Call(self, "metadata", context).run(work)

    def _unimplemented(self, method: str, context):
        def work(_call: _Call):
            raise ServingError("UNIMPLEMENTED", f"{method} is not implemented by python -m "
                               "serving; the models here have predict signatures only")

        return _Call(self, method.lower(), context).run(work)

    def Classify(self, request, context):  # noqa: N802
        return self._unimplemented("Classify", context)

    def Regress(self, request, context):  # noqa: N802
        return self._unimplemented("Regress", context)

    def MultiInference(self, request, context):  # noqa: N802
        return self._unimplemented("MultiInference", context)

    # -- ModelService ---------------------------------------------------------------------

    def GetModelStatus(self, request, context):  # noqa: N802
        def work(call: _Call) -> get_model_status_pb2.GetModelStatusResponse:
            spec = request.model_spec
            call.model = spec.name
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in self.manager.status(spec.name, *_choice(spec)):
                entry = response.model_version_status.add(
                    version=status.version,
                    state=get_model_status_pb2.ModelVersionStatus.State.Value(status.state))
                entry.status.error_code = CODE_NAMES.index(status.error_code)
                entry.status.error_message = status.error_message
            return response

        return _Call(self, "status", context).run(work)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        def work(_call: _Call) -> model_management_pb2.ReloadConfigResponse:
            if not self.allow_reload:
                raise ServingError("PERMISSION_DENIED", "HandleReloadConfigRequest is refused: "
                                   "this server runs with --refuse_reload_config_requests "
                                   "(the default of python -m serving)")
            self.manager.reload(request.config)
            return model_management_pb2.ReloadConfigResponse()

        return _Call(self, "reload", context).run(work)


def grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def create_server(api: GrpcApi, host: str, port: int, threads: int,
                  max_message_bytes: int) -> grpc.Server:
    """Bind both services on host:port; raise OSError when the port cannot be had."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(api, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(api, server)
    address = grpc_address(host, port)
    try:
        server.add_insecure_port(address)
    except RuntimeError as err:  # grpcio raises when the address cannot be bound
        raise OSError(f"Failed to bind gRPC to {address}: {err}") from None
    return server
