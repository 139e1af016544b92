"""Connect to MLflow: a local SQLite store or a tracking server that must answer quickly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from training.config import Settings

HEALTH_TIMEOUT_S = 5


class TrackingError(RuntimeError):
    """MLflow cannot be reached or used, with what to do about it."""


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def connect(settings: Settings):
    """Point MLflow at settings.tracking_uri and return an MlflowClient.

    A server must answer /health within seconds: MLflow's own client would otherwise
    retry for minutes before saying anything.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    if is_remote(uri):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S).raise_for_status()
        except requests.RequestException as err:
            raise TrackingError(
                f"The MLflow tracking server at {uri} is not reachable ({err.__class__.__name__}). "
                "Start it (`make up`, or `docker compose up -d mlflow`), or unset "
                "MLFLOW_TRACKING_URI to track into the local sqlite:///mlruns/mlflow.db."
            ) from err
    elif uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


# MLflow's UI opens an experiment on its GenAI pages unless the experiment says it trains
# models (or the link carries ?workflowType=machine_learning): this tag says so.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "Keras digit classifiers trained on MNIST, measured on MNIST test and "
                           "on digits drawn like the web page's; every run registers a version "
                           "of the model TF Serving serves.",
}


def experiment_id(client, settings: Settings) -> str:
    """Get or create the experiment, marked as model training; a local store keeps artifacts
    under artifact_root."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        location = None
        if not is_remote(settings.tracking_uri):
            location = Path(settings.artifact_root).resolve().as_uri()
        return client.create_experiment(settings.experiment, artifact_location=location,
                                        tags=EXPERIMENT_TAGS)
    for key, value in EXPERIMENT_TAGS.items():  # stores made before the tags existed
        if key not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def git_commit(settings: Settings) -> str:
    """The code's commit: GIT_COMMIT where set (containers), else git, else 'unknown'."""
    if settings.git_commit:
        return settings.git_commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
