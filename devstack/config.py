"""What the local stack runs with: ports, paths and trainer flags, from flags and environment.

The environment variable names are docker-compose's (see .env.example), so one setting moves a
port for `docker compose up` and `make up` alike.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from contract import (
    DEFAULT_ARTIFACT_ROOT,
    DEFAULT_MODELS_CONFIG,
    DEFAULT_MODELS_DIR,
    DEFAULT_TRACKING_URI,
    GRPC_PORT,
    MLFLOW_PORT,
    MODEL_NAME,
    PROMETHEUS_PORT,
    REST_PORT,
    WEBUI_PORT,
)

# The checkout this package lives in: every role runs there, and its paths are relative to it.
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PortSetting:
    """One port of the stack: its StackConfig field, what listens there, what moves it."""

    field: str
    what: str  # "MLflow", "TF Serving REST", ...
    env: str  # docker-compose's variable for it
    default: int  # contract.py's port
    note: str = ""  # added to its --help

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


PORTS = (
    PortSetting("mlflow_port", "MLflow", "MLFLOW_PORT", MLFLOW_PORT),
    PortSetting("rest_port", "TF Serving REST", "TF_SERVING_REST_PORT", REST_PORT),
    PortSetting("grpc_port", "TF Serving gRPC", "TF_SERVING_GRPC_PORT", GRPC_PORT,
                note=" (tensorflow_model_server only)"),
    PortSetting("webui_port", "web UI", "WEBUI_PORT", WEBUI_PORT),
    PortSetting("prometheus_port", "Prometheus", "PROMETHEUS_PORT", PROMETHEUS_PORT,
                note=" (when prometheus is on PATH)"),
)

TF_SERVING_BINARY = "tensorflow_model_server"
PROMETHEUS_BINARY = "prometheus"

# Relative to ROOT; the stores and models.config are the programs' own defaults (compose's
# models.config is the same file, written with the container path /models/mnist).
LOG_DIR = Path("mlruns/logs")
PID_FILE = LOG_DIR / "devstack.pid"
BACKEND_STORE_URI = DEFAULT_TRACKING_URI
ARTIFACTS_DESTINATION = DEFAULT_ARTIFACT_ROOT
MODELS_DIR = Path(DEFAULT_MODELS_DIR)
MODELS_CONFIG = Path(DEFAULT_MODELS_CONFIG)


def env_port(setting: PortSetting, environ=os.environ) -> int:
    """A port's default: its environment variable when set and non-empty, else contract.py."""
    text = environ.get(setting.env) or str(setting.default)
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{setting.env} must be a port number, got {text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{setting.env} must be between 1 and 65535, got {port}")
    return port


@dataclass(frozen=True)
class PortUse:
    what: str  # "MLflow", "TF Serving REST", ...
    port: int
    env: str  # the variable that moves it
    flag: str  # the flag that moves it


@dataclass(frozen=True)
class StackConfig:
    mlflow_port: int = MLFLOW_PORT
    rest_port: int = REST_PORT
    grpc_port: int = GRPC_PORT
    webui_port: int = WEBUI_PORT
    prometheus_port: int = PROMETHEUS_PORT
    model_name: str = MODEL_NAME
    train_args: tuple[str, ...] = ()  # extra `python -m training bootstrap` flags
    tf_serving: str | None = None  # path of tensorflow_model_server; None: python -m serving
    prometheus: str | None = None  # path of prometheus; None: no monitoring role
    # MLflow's stores, as `mlflow server` takes them (and from the same variables):
    # PostgreSQL and an S3 bucket, say, instead of SQLite and a folder in mlruns/.
    backend_store_uri: str = BACKEND_STORE_URI
    artifacts_destination: str = ARTIFACTS_DESTINATION
    retrain_interval: int | None = None  # RETRAIN_INTERVAL seconds; None: no retrain role
    root: Path = ROOT

    @classmethod
    def from_args(cls, args, environ=os.environ) -> StackConfig:
        """Flags (whose defaults came from the environment), plus MODEL_NAME, PATH, MLflow's
        stores, MONITORING=off (no Prometheus even where one is on PATH) and RETRAIN_INTERVAL."""
        return cls(
            mlflow_port=args.mlflow_port, rest_port=args.rest_port,
            grpc_port=args.grpc_port, webui_port=args.webui_port,
            prometheus_port=args.prometheus_port,
            model_name=environ.get("MODEL_NAME") or MODEL_NAME,
            train_args=tuple(shlex.split(args.train_args or "")),
            tf_serving=shutil.which(TF_SERVING_BINARY, path=environ.get("PATH")),
            prometheus=None if environ.get("MONITORING") == "off"
            else shutil.which(PROMETHEUS_BINARY, path=environ.get("PATH")),
            backend_store_uri=environ.get("MLFLOW_BACKEND_STORE_URI") or BACKEND_STORE_URI,
            artifacts_destination=(environ.get("MLFLOW_ARTIFACTS_DESTINATION")
                                   or ARTIFACTS_DESTINATION),
            retrain_interval=_seconds(environ.get("RETRAIN_INTERVAL"), "RETRAIN_INTERVAL"),
        )

    @property
    def ports(self) -> list[PortUse]:
        """The ports the stack listens on: both servers serve gRPC; Prometheus where it runs."""
        return [PortUse(s.what, getattr(self, s.field), s.env, s.flag) for s in PORTS
                if s.field != "prometheus_port" or self.prometheus]

    @property
    def serving_base_path(self) -> Path:
        """Where the trainer publishes versions and TF Serving finds them (absolute)."""
        return self.root / MODELS_DIR / self.model_name


def _seconds(text: str | None, variable: str) -> int | None:
    """A whole number of seconds from the environment; None when unset or empty."""
    if not text:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{variable} must be a whole number of seconds, got {text!r}")
    return int(text)
