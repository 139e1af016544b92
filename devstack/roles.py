"""The roles of the stack, in start order: command line, environment, readiness probe.

They mirror docker-compose.yml's services with local paths: MLflow on a SQLite store in
./mlruns (or MLFLOW_BACKEND_STORE_URI's), a one-shot trainer that writes ./models and
models/models.config, TF Serving (the real one when on PATH) reading that config, the web UI
talking to both, and Prometheus scraping them all where a `prometheus` binary is on PATH.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contract import LOOPBACK, STABLE_LABEL, serving_version
from devstack import monitoring
from devstack.config import MODELS_CONFIG, MODELS_DIR, StackConfig
from devstack.fetch import fetch, fetch_json

PYTHON = sys.executable
TF_SERVING_FLAGS = Path("serving/tfserving.flags")  # relative to the checkout
CONFIG_MOUNT = "/config/"  # where docker-compose.yml mounts ./serving for tfserving


@dataclass(frozen=True)
class Role:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the inherited environment
    # None: a one-shot job that must exit 0. Else returns None until ready, then a short note.
    probe: Callable[[], str | None] | None = None
    timeout: float = 120.0  # seconds until the probe must pass
    stream: bool = False  # show its output as it runs (the trainer's progress)
    note: str = ""  # what the progress line says it is


def mlflow(config: StackConfig) -> Role:
    url = f"http://{LOOPBACK}:{config.mlflow_port}/health"

    def ready() -> str | None:
        answer = fetch(url)
        return "" if answer and answer[0] == 200 else None

    # Prometheus scrapes MLflow's /metrics, which --expose-prometheus turns on.
    metrics = ["--expose-prometheus", str(monitoring.MLFLOW_METRICS_DIR)] \
        if config.prometheus else []
    return Role("mlflow", [
        PYTHON, "-m", "mlflow", "server",
        "--backend-store-uri", config.backend_store_uri,
        "--artifacts-destination", config.artifacts_destination,
        "--host", LOOPBACK, "--port", str(config.mlflow_port), "--workers", "1", *metrics,
    ], env={
        # Its job runner (GenAI scorers, trace rollups; unused here) is 8 more processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }, probe=ready, timeout=180, note="MLflow tracking server")


def _trainer_env(config: StackConfig) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"http://{LOOPBACK}:{config.mlflow_port}",
        "MODEL_NAME": config.model_name,
        "MODELS_DIR": str(MODELS_DIR),
        "MODELS_CONFIG": str(MODELS_CONFIG),
        "SERVING_BASE_PATH": str(config.serving_base_path),
        # The first champion comes quickly, as with compose; `make train` adds better ones.
        "TRAIN_PROFILE": os.environ.get("TRAIN_PROFILE") or "quick",
        # TensorFlow's INFO lines would bury the progress bars
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1"),
    }


def trainer(config: StackConfig) -> Role:
    return Role("trainer", [PYTHON, "-m", "training", "bootstrap", *config.train_args],
                env=_trainer_env(config), stream=True,
                note="train and promote a first champion, unless one exists")


def retrain(config: StackConfig) -> Role:
    """`retrain --every RETRAIN_INTERVAL`: learns from the page's corrections by itself.

    Ready at once: it waits between runs. Its decisions are in its log and in
    `python -m training feedback stats`.
    """
    every = config.retrain_interval
    return Role("retrain", [PYTHON, "-m", "training", "retrain", "--every", str(every)],
                env=_trainer_env(config), probe=lambda: f"every {every} s",
                note="retrain from the corrections when enough arrive (RETRAIN_INTERVAL)")


def serving_args(config: StackConfig) -> list[str]:
    """serving/tfserving.flags with this stack's ports and local paths.

    In compose, ./serving is mounted at /config; here the files are read where they are, except
    models.config, which is the local one. python -m serving takes every one of these flags.
    """
    program = [config.tf_serving] if config.tf_serving else [PYTHON, "-m", "serving"]
    local = {"--port": config.grpc_port, "--rest_api_port": config.rest_port,
             "--model_config_file": MODELS_CONFIG}
    flags = []
    for flag in (config.root / TF_SERVING_FLAGS).read_text().split():
        name, _, value = flag.partition("=")
        value = local.get(name, value.replace(CONFIG_MOUNT, f"{TF_SERVING_FLAGS.parent}/"))
        flags.append(f"{name}={value}")
    # Loopback only, as MLflow and the web UI; tensorflow_model_server has no such flag.
    loopback = [] if config.tf_serving else [f"--host={LOOPBACK}"]
    return program + flags + loopback


def serving(config: StackConfig) -> Role:
    url = (f"http://{LOOPBACK}:{config.rest_port}/v1/models/{config.model_name}"
           f"/labels/{STABLE_LABEL}")

    def ready() -> str | None:
        answer = fetch_json(url)
        if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
            return None
        version = serving_version(answer[1].get("model_version_status", []))
        return f"{config.model_name} label {STABLE_LABEL} -> v{version}" if version else None

    note = "tensorflow_model_server" if config.tf_serving else \
        "python -m serving (tensorflow_model_server is not on PATH)"
    return Role("serving", serving_args(config), probe=ready, timeout=300, note=note)


def webui(config: StackConfig) -> Role:
    """The web UI on loopback; FEEDBACK*, WEBUI_ALLOWED_HOSTS and the like it inherits."""
    url = f"http://{LOOPBACK}:{config.webui_port}/readyz"

    def ready() -> str | None:
        answer = fetch_json(url)
        return "" if answer and answer[0] == 200 else None

    return Role("webui", [
        PYTHON, "-m", "webui", "--host", LOOPBACK, "--port", str(config.webui_port),
    ], env={
        "TF_SERVING_URL": f"http://{LOOPBACK}:{config.rest_port}",
        "MODEL_NAME": config.model_name,
        "MLFLOW_TRACKING_URI": f"http://{LOOPBACK}:{config.mlflow_port}",
        "MLFLOW_UI_URL": f"http://localhost:{config.mlflow_port}",
    }, probe=ready, timeout=120, note="web UI")


def prometheus(config: StackConfig) -> Role:
    """Prometheus on monitoring/'s jobs and rules (devstack/monitoring.py), when on PATH."""
    url = f"http://{LOOPBACK}:{config.prometheus_port}"

    def ready() -> str | None:
        answer = fetch(f"{url}/-/ready")
        return f"http://localhost:{config.prometheus_port}" if answer and answer[0] == 200 \
            else None

    return Role("prometheus", monitoring.command(config), probe=ready, timeout=60,
                note="Prometheus: scrapes MLflow, TF Serving and the web UI (MONITORING=off: not)")


def all_roles(config: StackConfig) -> list[Role]:
    roles = [mlflow(config), trainer(config), serving(config), webui(config)]
    if config.retrain_interval:
        roles.append(retrain(config))
    return roles + [prometheus(config)] if config.prometheus else roles
