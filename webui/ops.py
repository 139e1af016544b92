"""Routes for operators and orchestrators: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from webui.tfs_client import ServingProblem

bp = Blueprint("ops", __name__)

READY_TIMEOUT = 2.0  # a readiness probe must answer before the orchestrator gives up


@bp.get("/healthz")
def healthz():
    """Say the process is alive; checks nothing else, so a TF Serving outage never restarts us."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when TF Serving answers and the configured label names an AVAILABLE version."""
    client = current_app.extensions["webui.tfs"]
    label = current_app.config["MODEL_LABEL"]
    timeout = min(READY_TIMEOUT, current_app.config["TF_SERVING_TIMEOUT"])
    try:
        version = client.label_version(label, timeout=timeout)
    except ServingProblem as e:
        return jsonify(status="unavailable", reason=e.message), 503
    return jsonify(status="ready", model={"name": client.model, "label": label,
                                          "version": version})


@bp.get("/metrics")
def metrics():
    return current_app.extensions["webui.metrics"].exposition()
