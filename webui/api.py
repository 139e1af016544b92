"""The JSON API: `POST /api/predict` and `GET /api/model`.

Every answer here is JSON; failures are `{"error": "..."}` with a 4xx (the request) or a
502/503/504 (the model service), never a 500 page.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from contract import CANARY_LABEL, STABLE_LABEL
from webui import messages, validation
from webui.tfs_client import ServingProblem, ServingUnavailable

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(validation.InvalidImage)
def _invalid_image(error: validation.InvalidImage):
    return jsonify(error=error.message), error.status


@bp.errorhandler(ServingProblem)
def _serving_problem(error: ServingProblem):
    current_app.extensions["webui.metrics"].serving_errors.labels(type(error).__name__).inc()
    return jsonify(error=error.message), error.status


@bp.post("/predict")
def predict():
    """Predict the digit in `{"image": "<PNG data URL or base64>"}`.

    `latency_ms` is the time this server spent on the request: checks plus the model call.
    """
    started = time.perf_counter()
    image = validation.parse(_json_body(), current_app.config["MAX_IMAGE_SIDE"])
    version, outputs = _predict(image.png)
    latency_ms = (time.perf_counter() - started) * 1000
    metrics = current_app.extensions["webui.metrics"]
    metrics.predictions.labels(version, str(outputs["digit"])).inc()
    return jsonify(
        digit=outputs["digit"],
        probabilities=outputs["probabilities"],
        normalized=outputs["normalized"],
        model=_model_json(version),
        latency_ms=round(latency_ms, 2),
    )


@bp.get("/model")
def model():
    """List the served versions, the labels that name them and the MLflow run of each."""
    client = current_app.extensions["webui.tfs"]
    versions = client.status()
    labels = {}
    for label in dict.fromkeys([current_app.config["MODEL_LABEL"], STABLE_LABEL, CANARY_LABEL]):
        try:
            named = client.status(label=label)
        except ServingUnavailable:
            continue  # the label is not set (or names nothing loaded)
        if named:
            labels[label] = named[0].version
    runs = current_app.extensions["webui.runs"]
    return jsonify(
        name=client.model,
        label=current_app.config["MODEL_LABEL"],
        labels=labels,
        versions=[
            {
                "version": v.version,
                "state": v.state,
                "labels": [name for name, version in labels.items() if version == v.version],
                "run": _run_json(runs.find(v.version)),
            }
            for v in sorted(versions, key=lambda v: (len(v.version), v.version), reverse=True)
        ],
    )


def _json_body() -> object:
    """Parse the body as JSON whatever its Content-Type (curl -d sends a form type)."""
    data = request.get_data(cache=False)
    # A chunked body (no Content-Length) is cut at the limit instead of refused: refuse it.
    if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
        raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise validation.InvalidImage(messages.NOT_JSON) from None


def _predict(png: bytes) -> tuple[str, dict]:
    """Predict with the version the label names, so the answer's version is certain.

    The label is resolved first (cached a few seconds) and the request goes to that exact
    version. If the server no longer has it (a promotion unloaded it), resolve once more.
    """
    labels = current_app.extensions["webui.labels"]
    client = current_app.extensions["webui.tfs"]
    metrics = current_app.extensions["webui.metrics"]
    version = labels.version()
    started = time.perf_counter()
    try:
        outputs = client.predict_image(png, version)
    except ServingUnavailable:
        labels.forget()
        fresh = labels.version()
        if fresh == version:
            raise
        version = fresh
        outputs = client.predict_image(png, version)
    metrics.serving_latency.observe(time.perf_counter() - started)
    return version, outputs


def _model_json(version: str) -> dict:
    run = current_app.extensions["webui.runs"].find(version)
    return {
        "name": current_app.config["MODEL_NAME"],
        "version": version,
        "label": current_app.config["MODEL_LABEL"],
        "run": _run_json(run),
    }


def _run_json(run) -> dict | None:
    return run.as_json() if run else None
