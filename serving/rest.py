"""TF Serving's REST API as a Flask app: model status, metadata and :predict.

Paths are matched with the regular expressions of `http_rest_api_util.cc` rather than Flask
routes, so odd paths get TF Serving's answers too ("Malformed request: ...", "Missing model
name in request."). Every failure is `{"error": message}` with the status code TF Serving
gives its canonical error code; nothing answers with a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
import time

import orjson
from flask import Flask, Response, request

from serving.batching import Batching, Direct
from serving.config import MAX_IMAGE_PIXELS, MAX_REQUEST_BYTES
from serving.errors import ServingError, from_exception, invalid
from serving.images import check_images
from serving.manager import Manager
from serving.metrics import Metrics
from serving.tensors import parse_body, signature_name, to_body, to_inputs

log = logging.getLogger(__name__)

_SPEC = r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
PREDICT_PATH = re.compile(_SPEC + r":(classify|regress|predict)", re.IGNORECASE)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|"
                         r"(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE)
INT64_MAX = 2**63 - 1
INT64_DIGITS = len(str(INT64_MAX))
DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


def _dumps(body: dict) -> bytes:
    """orjson writes a prediction's floats 15x faster than json; it writes NaN and Infinity
    as null where TF Serving writes NaN and Infinity, so a body with a null goes through json."""
    text = orjson.dumps(body)
    return json.dumps(body).encode() if b"null" in text else text


def _json(body: dict, status: int = 200) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json")


def _version(text: str | None) -> int | None:
    if not text:
        return None
    # A number of thousands of digits is refused by its length (Python will not parse it),
    # leading zeros aside: 000...07 is version 7, as TF Serving reads it.
    digits = text.lstrip("0") or "0"
    version = int(digits) if len(digits) <= INT64_DIGITS else INT64_MAX + 1
    if version > INT64_MAX:
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return version


class RestApi:
    """Dispatches one /v1 request and records it in the metrics."""

    def __init__(self, manager: Manager, metrics: Metrics, predictor: Batching | Direct,
                 max_request_bytes: int, max_image_pixels: int):
        self.manager = manager
        self.metrics = metrics
        self.predictor = predictor
        self.max_request_bytes = max_request_bytes
        self.max_image_pixels = max_image_pixels

    def handle(self) -> Response:
        started = time.perf_counter()
        call = {"model": "", "version": "", "api": "other"}
        try:
            body, status_code, code = self._dispatch(call), 200, "OK"
        except Exception as err:  # every failure becomes TF Serving's JSON error
            if not isinstance(err, ServingError):
                log.exception("Unexpected failure answering %s %s", request.method, request.path)
            error = from_exception(err)
            body, status_code, code = {"error": error.message}, error.http_status, error.code
        known = call["model"] in self.manager.model_names()
        self.metrics.observe(call["model"] if known else "", call["version"], call["api"], code,
                             time.perf_counter() - started)
        return _json(body, status_code)

    def _dispatch(self, call: dict) -> dict:
        path, method = request.path, request.method
        match = PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if match:
            model, version, label, verb = match.groups()
            call.update(model=model, api=verb.lower())
            if call["api"] != "predict":
                raise ServingError("UNIMPLEMENTED", f"{verb} is not implemented by "
                                   "python -m serving; use :predict")
            return self._predict(call, model, _version(version), label)
        match = STATUS_PATH.fullmatch(path) if method == "GET" else None
        if not match:
            raise invalid(f"Malformed request: {method} {path}")
        model, version, label, metadata = match.groups()
        if not model:
            raise invalid("Missing model name in request.")
        call.update(model=model, api="metadata" if metadata else "status")
        servable_version = _version(version)
        if metadata:
            servable = self.manager.servable(model, servable_version, label)
            call["version"] = str(servable.version)
            return servable.metadata()
        statuses = self.manager.status(model, servable_version, label)
        return {"model_version_status": [s.to_json() for s in statuses]}

    def _predict(self, call: dict, model: str, version: int | None, label: str | None) -> dict:
        size = request.content_length or 0
        if size > self.max_request_bytes:  # refused before it is parsed
            raise ServingError("RESOURCE_EXHAUSTED", f"Request body of {size} bytes is larger "
                               f"than the limit of {self.max_request_bytes} bytes "
                               "(--max_request_bytes)", http_status=413)
        doc = parse_body(request.get_data())
        signature = signature_name(doc)
        servable = self.manager.servable(model, version, label)
        call["version"] = str(servable.version)
        if isinstance(doc.get("instances"), list):  # refuse a huge batch before converting it
            self.predictor.admit(len(doc["instances"]))
        inputs, fmt = to_inputs(doc, servable.input_specs(signature))
        check_images(inputs, self.max_image_pixels)
        return to_body(self.predictor.predict(servable, signature, inputs), fmt)


def create_app(manager: Manager, metrics_path: str | None = None, *,
               metrics: Metrics | None = None, predictor: Batching | Direct | None = None,
               max_request_bytes: int = MAX_REQUEST_BYTES,
               max_image_pixels: int = MAX_IMAGE_PIXELS) -> Flask:
    """Build the REST app; `metrics_path` (from monitoring.config) enables Prometheus.

    `metrics` and `predictor` are shared with the gRPC API when both run.
    """
    app = Flask(__name__)
    metrics = metrics or Metrics()
    api = RestApi(manager, metrics, predictor or Direct(), max_request_bytes,
                  max_image_pixels)
    app.add_url_rule("/v1", "v1_root", api.handle, methods=["GET", "POST"])
    app.add_url_rule("/v1/<path:rest>", "v1", lambda rest: api.handle(), methods=["GET", "POST"])
    if metrics_path is not None:
        app.add_url_rule(metrics_path or DEFAULT_METRICS_PATH, "metrics",
                         lambda: Response(metrics.page(), mimetype="text/plain"))

    @app.errorhandler(404)
    def not_found(_err):
        return _json({"error": f"Not found: {request.path}"}, 404)

    @app.errorhandler(405)
    def wrong_method(_err):
        return _json({"error": f"Malformed request: {request.method} {request.path}"}, 400)

    return app
