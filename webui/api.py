"""The JSON API: `POST /api/predict`, `POST /api/feedback` and `GET /api/model`.

Every answer here is JSON; failures are `{"error": "..."}` with a 4xx (the request) or a
502/503/504 (the model service), never a 500 page.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from PIL import Image
from werkzeug.exceptions import RequestEntityTooLarge

from contract import CANARY_LABEL, IMAGE_SIZE, NUM_CLASSES, STABLE_LABEL
from corrections.store import Answer, StoreUnavailable
from webui import messages, pending, validation
from webui.challenger import ChallengerAnswer
from webui.tfs_client import ServingProblem, ServingUnavailable

bp = Blueprint("api", __name__, url_prefix="/api")

TOP_DIGITS = 3  # how many of the likeliest digits an answer lists
FEEDBACK_BODY_LIMIT = 4096  # a correction is two small fields


@bp.errorhandler(validation.InvalidImage)
def _invalid_image(error: validation.InvalidImage):
    return jsonify(error=error.message), error.status


class Refused(Exception):
    """A request this API will not act on; `status` (4xx) and `message` are the answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@bp.errorhandler(Refused)
def _refused(error: Refused):
    return jsonify(error=error.message), error.status


@bp.errorhandler(ServingProblem)
def _serving_problem(error: ServingProblem):
    current_app.extensions["webui.metrics"].serving_errors.labels(type(error).__name__).inc()
    return jsonify(error=error.message), error.status


@bp.post("/predict")
def predict():
    """Predict the digit in `{"image": "<PNG data URL or base64>"}`.

    `prediction_id` names the answer for POST /api/feedback; `confident` is false below
    CONFIDENCE_THRESHOLD, and `top` lists the likeliest digits. `challenger` is there when
    label canary names another version. `latency_ms` is the time this server spent on the
    request: checks plus the model calls.
    """
    started = time.perf_counter()
    image = validation.parse(_json_body(), current_app.config["MAX_IMAGE_SIDE"])
    version, outputs, challenger = _predict(image.png)
    latency_ms = (time.perf_counter() - started) * 1000
    metrics = current_app.extensions["webui.metrics"]
    metrics.predictions.labels(version, str(outputs["digit"])).inc()
    prediction_id = pending.new_id()
    _keep(prediction_id, image.png, version, outputs, challenger)
    probabilities = outputs["probabilities"]
    best = sorted(range(len(probabilities)), key=lambda d: -probabilities[d])[:TOP_DIGITS]
    body = {
        "prediction_id": prediction_id,
        "digit": outputs["digit"],
        "probabilities": probabilities,
        "confident": probabilities[outputs["digit"]] >= current_app.config["CONFIDENCE_THRESHOLD"],
        "top": [{"digit": d, "probability": probabilities[d]} for d in best],
        "normalized": outputs["normalized"],
        "model": _model_json(version),
        "latency_ms": round(latency_ms, 2),
    }
    if challenger is not None:
        body["challenger"] = _challenger_json(challenger, version, outputs["digit"])
    return jsonify(body)


@bp.post("/feedback")
def feedback():
    """Store `{"prediction_id": "...", "digit": 0-9 | null}` (null: the answer was right).

    What is stored is the answer the server gave (kept in the store since, so any replica
    can take it), not what the client claims; the body only says which answer and what the
    true digit is.
    """
    if not current_app.config["FEEDBACK"]:
        raise Refused(messages.FEEDBACK_OFF, 404)
    prediction_id, digit = _feedback_fields(
        _json_body(FEEDBACK_BODY_LIMIT, not_json=messages.FEEDBACK_NOT_JSON))
    store = current_app.extensions["webui.store"]
    try:
        answer = current_app.extensions["webui.pending"].find(prediction_id)
        row_id = store.save(answer, digit)
    except pending.ExpiredPrediction:
        window = current_app.config["FEEDBACK_WINDOW_SECONDS"]
        raise Refused(messages.PREDICTION_TOO_OLD.format(minutes=window / 60), 410) from None
    except pending.UnknownPrediction:
        raise Refused(messages.UNKNOWN_PREDICTION, 404) from None
    except StoreUnavailable as e:
        current_app.logger.warning("feedback store %s: %s", store.where(), e)
        return jsonify(error=messages.STORE_DOWN.format(detail=e)), 503
    metrics = current_app.extensions["webui.metrics"]
    truth = answer.digit if digit is None else digit
    metrics.feedback.labels(answer.model_version, _verdict(answer.digit, truth)).inc()
    if answer.challenger_digit is not None:  # the same drawing judges the challenger too
        metrics.challenger_feedback.labels(answer.model_version, answer.challenger_version,
                                           _verdict(answer.challenger_digit, truth)).inc()
    return jsonify(id=row_id, prediction_id=prediction_id, digit=answer.digit,
                   correction=digit, model={"name": answer.model_name,
                                            "version": answer.model_version,
                                            "label": answer.model_label}), 201


def _verdict(said: int, truth: int) -> str:
    return "right" if said == truth else "wrong"


@bp.get("/model")
def model():
    """List the served versions, the labels that name them and the MLflow run of each."""
    client = current_app.extensions["webui.tfs"]
    versions = client.status()
    labels = {}
    for label in dict.fromkeys([current_app.config["MODEL_LABEL"], STABLE_LABEL, CANARY_LABEL]):
        try:
            labels[label] = client.label_version(label)
        except ServingUnavailable:
            continue  # the label is not set (or names nothing loaded)
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


def _json_body(limit: int | None = None, not_json: str = messages.NOT_JSON) -> object:
    """Parse the body as JSON whatever its Content-Type (curl -d sends a form type)."""
    data = request.get_data(cache=False)
    # A chunked body (no Content-Length) is cut at the limit instead of refused: refuse it.
    if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
        raise RequestEntityTooLarge()
    if limit is not None and len(data) > limit:
        raise Refused(messages.BODY_TOO_LARGE.format(limit=limit), 413)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Refused(not_json) from None


def _feedback_fields(body: object) -> tuple[str, int | None]:
    """Check a correction's body; raise Refused (400, with a plain message) if it is wrong."""
    if not isinstance(body, dict):
        raise Refused(messages.FEEDBACK_NOT_JSON)
    prediction_id = body.get("prediction_id")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise Refused(messages.FEEDBACK_NO_PREDICTION_ID)
    if "digit" not in body:
        raise Refused(messages.FEEDBACK_NO_DIGIT)
    digit = body["digit"]
    if digit is not None and (type(digit) is not int or not 0 <= digit < NUM_CLASSES):
        raise Refused(messages.FEEDBACK_BAD_DIGIT.format(value=json.dumps(digit)[:40]))
    return prediction_id, digit


def _keep(prediction_id: str, png: bytes, version: str, outputs: dict,
          challenger: ChallengerAnswer | None) -> None:
    """Keep the answer in the store, so a correction (to any replica) stores what was said."""
    if not current_app.config["FEEDBACK"]:
        return
    normalized = _gray_bytes(outputs["normalized"])
    if normalized is None:
        return  # not a 28x28: nothing a correction could train on
    answered = challenger is not None and challenger.digit is not None
    current_app.extensions["webui.pending"].add(Answer(
        prediction_id=prediction_id, predicted_at=datetime.now(UTC),
        model_name=current_app.config["MODEL_NAME"], model_version=version,
        model_label=current_app.config["MODEL_LABEL"], digit=outputs["digit"],
        probabilities=tuple(outputs["probabilities"]),
        png=png if len(png) <= current_app.config["FEEDBACK_MAX_PNG_BYTES"] else None,
        normalized=normalized,
        challenger_version=challenger.version if answered else None,
        challenger_digit=challenger.digit if answered else None))


def _gray_bytes(rows) -> bytes | None:
    """The model's 28x28 floats as 784 gray bytes, rounded and clipped; None if not 28x28.

    Pillow does the 784 conversions in C: a Python loop over them cost a quarter of a
    millisecond on every prediction.
    """
    if len(rows) != IMAGE_SIZE or any(len(row) != IMAGE_SIZE for row in rows):
        return None
    plane = Image.new("F", (IMAGE_SIZE, IMAGE_SIZE))
    plane.putdata(list(itertools.chain.from_iterable(rows)), offset=0.5)  # round half up
    return plane.convert("L").tobytes()  # truncates, clipped to 0-255


def _predict(png: bytes) -> tuple[str, dict, ChallengerAnswer | None]:
    """Predict with the version the label names, so the answer's version is certain.

    The label is resolved first (cached a few seconds) and the request goes to that exact
    version. If the server no longer has it (a promotion unloaded it), resolve once more.
    The challenger, if any, is asked at the same time and waited for only within its timeout.
    """
    labels = current_app.extensions["webui.labels"]
    client = current_app.extensions["webui.tfs"]
    metrics = current_app.extensions["webui.metrics"]
    challenger = current_app.extensions["webui.challenger"]
    version = labels.version()
    asked = challenger.ask(png, version) if challenger else None
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
    return version, outputs, challenger.result(asked, version) if asked else None


def _challenger_json(answer: ChallengerAnswer, version: str, digit: int) -> dict:
    """The challenger's answer for the page, counted on /metrics as agreeing or not."""
    metrics = current_app.extensions["webui.metrics"]
    body = {"version": answer.version, "label": CANARY_LABEL,
            "run": _run_json(current_app.extensions["webui.runs"].find(answer.version))}
    if answer.digit is None:
        metrics.challenger_missed.labels(version, answer.version).inc()
        return {**body, "digit": None, "note": answer.note}
    agrees = answer.digit == digit
    metrics.challenger_answers.labels(version, answer.version, str(digit),
                                      str(agrees).lower()).inc()
    return {**body, "digit": answer.digit, "probabilities": answer.probabilities,
            "agrees": agrees}


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
