"""DigitOps web UI: draw a digit, get TF Serving's answer, see which MLflow run made the model.

The app holds no model. It validates the drawing, proxies it to TF Serving's REST API and
shapes the answer. Build it with `create_app()`; run it with `python -m webui` or
`waitress-serve --call webui:create_app`.

Environment (read when `create_app` runs, not at import):
    TF_SERVING_URL       TF Serving REST base URL (default http://localhost:8501)
    MODEL_NAME           served model name (default mnist)
    MODEL_LABEL          version label to predict with (default stable)
    TF_SERVING_TIMEOUT   seconds to wait for TF Serving per request (default 5)
    MLFLOW_TRACKING_URI  runs are linked only when this is an http(s) URL
    MLFLOW_UI_URL        MLflow UI the browser can open (default http://localhost:5000)
    CONFIDENCE_THRESHOLD below this probability the answer is shown as a guess (default 0.7)
    CHALLENGER_TIMEOUT   seconds the answer waits at most for label canary's (default 0.3)
    FEEDBACK             on/off: corrections on the page and POST /api/feedback (default on)
    FEEDBACK_DB_URL      SQLAlchemy URL of the feedback store (default sqlite:///mlruns/feedback.db)
    WEBUI_ALLOWED_HOSTS  Host headers answered, comma-separated, `*` for any text (default: the
                         loopback names and the bind address, with any port; webui/hosts.py)
    MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD  for an MLflow behind basic-auth
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from contract import (
    CANARY_LABEL,
    DEFAULT_FEEDBACK_DB_URL,
    DEFAULT_TF_SERVING_URL,
    DEFAULT_TRACKING_URI,
    MLFLOW_PORT,
    MODEL_NAME,
    STABLE_LABEL,
)
from webui import messages
from webui.hosts import ANY_HOST_PATHS

log = logging.getLogger(__name__)

DEFAULTS = {
    "TF_SERVING_URL": DEFAULT_TF_SERVING_URL,
    "MODEL_NAME": MODEL_NAME,
    "MODEL_LABEL": STABLE_LABEL,
    "TF_SERVING_TIMEOUT": 5.0,
    "MLFLOW_TRACKING_URI": DEFAULT_TRACKING_URI,
    "MLFLOW_UI_URL": f"http://localhost:{MLFLOW_PORT}",
    "MLFLOW_TIMEOUT": 2.0,  # MLflow only adds a link; never let it hold up an answer for long
    "VERSION_CACHE_SECONDS": 2.0,  # how long a label -> version lookup is trusted
    "MAX_IMAGE_SIDE": 2048,
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # Flask answers 413 past this
    # A quick model is >= 0.99 sure of nearly every MNIST test digit; below 0.7 its answers on
    # drawn digits are wrong about half the time (bench/feedback_loop.py): call them a guess.
    "CONFIDENCE_THRESHOLD": 0.7,
    "CHALLENGER_TIMEOUT": 0.3,  # the challenger must never make the page feel slower
    "FEEDBACK": "on",
    "FEEDBACK_DB_URL": DEFAULT_FEEDBACK_DB_URL,
    "FEEDBACK_WINDOW_SECONDS": 900.0,  # how long an answer can still be corrected
    "FEEDBACK_MAX_PNG_BYTES": 128 * 1024,  # larger uploads are kept without their PNG
    # PNG bytes one replica keeps in the store per window (past it answers are kept without):
    # a pod at its HPA target, ~45 canvas PNGs of ~12 KB a second for 15 minutes, fits.
    "PENDING_MAX_BYTES": 512 * 1024 * 1024,
    "WEBUI_ALLOWED_HOSTS": "",  # empty: the loopback names and the bind address
}
ENV_VARS = ("TF_SERVING_URL", "MODEL_NAME", "MODEL_LABEL", "TF_SERVING_TIMEOUT",
            "MLFLOW_TRACKING_URI", "MLFLOW_UI_URL",
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "CONFIDENCE_THRESHOLD",
            "CHALLENGER_TIMEOUT", "FEEDBACK", "FEEDBACK_DB_URL", "WEBUI_ALLOWED_HOSTS")
SWITCH = {"on": True, "true": True, "1": True, "yes": True,
          "off": False, "false": False, "0": False, "no": False}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def load_config(test_config: Mapping | None = None, environ: Mapping | None = None) -> dict:
    """Merge defaults, then the environment, then `test_config`; check the numbers."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    config.update({k: environ[k] for k in ENV_VARS if environ.get(k)})
    config.update(test_config or {})
    for key in ("TF_SERVING_TIMEOUT", "MLFLOW_TIMEOUT", "VERSION_CACHE_SECONDS",
                "CHALLENGER_TIMEOUT", "FEEDBACK_WINDOW_SECONDS"):
        try:
            config[key] = float(config[key])
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number of seconds, got {config[key]!r}") from None
        if config[key] < 0 or (key.endswith("TIMEOUT") and config[key] == 0):
            raise ValueError(f"{key} must be positive, got {config[key]!r}")
    try:
        config["CONFIDENCE_THRESHOLD"] = float(config["CONFIDENCE_THRESHOLD"])
    except (TypeError, ValueError):
        config["CONFIDENCE_THRESHOLD"] = -1.0
    if not 0 <= config["CONFIDENCE_THRESHOLD"] <= 1:
        raise ValueError("CONFIDENCE_THRESHOLD must be a probability from 0 to 1")
    if not isinstance(config["FEEDBACK"], bool):
        switch = SWITCH.get(str(config["FEEDBACK"]).strip().lower())
        if switch is None:
            raise ValueError(f"FEEDBACK must be on or off, got {config['FEEDBACK']!r}")
        config["FEEDBACK"] = switch
    return config


def create_app(test_config: Mapping | None = None, bind_host: str | None = None) -> Flask:
    """Build the web UI app; `test_config` overrides the defaults and the environment.

    `bind_host` is the address the server listens on: a Host it may be reached by.
    """
    from corrections.store import FeedbackStore
    from webui import api, hosts, openapi, ops, pages
    from webui.challenger import Challenger
    from webui.metrics import Metrics
    from webui.pending import Pending
    from webui.runs import RunFinder
    from webui.tfs_client import LabelCache, TFServingClient

    app = Flask(__name__)
    app.config.update(load_config(test_config))
    app.config["DEBUG"] = False  # never the debugger: it runs code sent by the browser
    app.json.sort_keys = False

    client = TFServingClient(app.config["TF_SERVING_URL"], app.config["MODEL_NAME"],
                             app.config["TF_SERVING_TIMEOUT"])
    app.extensions["webui.tfs"] = client
    app.extensions["webui.labels"] = LabelCache(
        client, app.config["MODEL_LABEL"], app.config["VERSION_CACHE_SECONDS"])
    app.extensions["webui.runs"] = RunFinder(
        app.config["MLFLOW_TRACKING_URI"], app.config["MLFLOW_UI_URL"],
        app.config["MODEL_NAME"], timeout=app.config["MLFLOW_TIMEOUT"],
        auth=_mlflow_auth(app.config))
    challenger = None
    if app.config["MODEL_LABEL"] != CANARY_LABEL:
        challenger = Challenger(
            TFServingClient(app.config["TF_SERVING_URL"], app.config["MODEL_NAME"],
                            app.config["CHALLENGER_TIMEOUT"]),
            CANARY_LABEL, app.config["VERSION_CACHE_SECONDS"])
    app.extensions["webui.challenger"] = challenger
    # The store is opened lazily: predictions work even while its database is down.
    store = FeedbackStore(app.config["FEEDBACK_DB_URL"])
    app.extensions["webui.store"] = store
    app.extensions["webui.pending"] = Pending(store, app.config["FEEDBACK_WINDOW_SECONDS"],
                                              app.config["PENDING_MAX_BYTES"])
    Metrics().init_app(app)
    app.extensions["webui.hosts"] = hosts.AllowedHosts(app.config["WEBUI_ALLOWED_HOSTS"],
                                                       bind_host)
    app.before_request(_refuse_unknown_hosts)  # after the metrics' own: refusals are counted

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ops.bp)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _mlflow_auth(config: Mapping) -> tuple[str, str] | None:
    """MLflow's own client variables, so one pair of settings serves the trainer and the UI."""
    user = config.get("MLFLOW_TRACKING_USERNAME")
    return (user, config.get("MLFLOW_TRACKING_PASSWORD", "")) if user else None


def _refuse_unknown_hosts():
    """Answer 400 to a Host not in WEBUI_ALLOWED_HOSTS (DNS rebinding); probes pass."""
    if request.path in ANY_HOST_PATHS or current_app.extensions["webui.hosts"].allows(
            request.host):
        return None
    host = json.dumps(request.host[:100]) if request.host else messages.NO_VALID_HOST
    log.warning("refused Host %s on %s %s", host, request.method, request.path)
    return jsonify(error=messages.HOST_NOT_ALLOWED.format(host=host)), 400


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/readyz", "/healthz")


def _http_error(error: HTTPException):
    """Answer HTTP errors as `{"error": ...}` under /api/; elsewhere keep Flask's page."""
    if not _wants_json():
        return error
    text = {
        400: messages.BAD_REQUEST,
        404: messages.NOT_FOUND,
        405: messages.METHOD_NOT_ALLOWED.format(method=request.method),
        413: messages.BODY_TOO_LARGE.format(limit=current_app.config["MAX_CONTENT_LENGTH"]),
    }.get(error.code, error.description)
    response = jsonify(error=text)
    response.status_code = error.code or 500
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _unexpected_error(error: Exception):
    """Log a bug with its traceback; the client gets JSON (under /api/), never a trace."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    if _wants_json():
        return jsonify(error=messages.INTERNAL), 500
    return "Internal Server Error", 500
