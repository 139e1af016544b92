"""Where the trainer reads and writes: one frozen Settings, taken from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from contract import (
    DEFAULT_ARTIFACT_ROOT,
    DEFAULT_FEEDBACK_DB_URL,
    DEFAULT_MODELS_CONFIG,
    DEFAULT_MODELS_DIR,
    DEFAULT_TRACKING_URI,
    MODEL_NAME,
)
from training.models_config import CONTAINER_BASE_PATH

# Settings field -> the environment variable that sets it (see .env.example).
ENV_VARS = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "artifact_root": "MLFLOW_ARTIFACT_ROOT",
    "data_dir": "MNIST_DIR",
    "real_writers_dir": "REAL_WRITERS_DIR",
    "drawn_dir": "DRAWN_DIGITS_DIR",
    "drawn_per_digit": "DRAWN_DIGITS_PER_DIGIT",
    "models_dir": "MODELS_DIR",
    "models_config": "MODELS_CONFIG",
    "serving_base_path": "SERVING_BASE_PATH",
    "model_name": "MODEL_NAME",
    "experiment": "MLFLOW_EXPERIMENT_NAME",
    "git_commit": "GIT_COMMIT",
    "feedback_db_url": "FEEDBACK_DB_URL",
    "retrain_min_corrections": "RETRAIN_MIN_CORRECTIONS",
}


@dataclass(frozen=True)
class Settings:
    tracking_uri: str = DEFAULT_TRACKING_URI
    # Artifact folder for a local SQLite store; a tracking server decides its own.
    artifact_root: str = DEFAULT_ARTIFACT_ROOT
    data_dir: str | None = None  # None: download into the user cache
    real_writers_dir: str | None = None  # USPS and Semeion; None: download into the user cache
    drawn_dir: str | None = None  # the drawn-digit set's folder; None: the user cache
    drawn_per_digit: int = 300  # drawings of each digit that canvas_accuracy is measured on
    models_dir: str = DEFAULT_MODELS_DIR  # TF Serving's model base path's parent
    models_config: str = DEFAULT_MODELS_CONFIG
    # The base path written into models.config: where TF Serving sees models_dir/<name>.
    serving_base_path: str = CONTAINER_BASE_PATH
    model_name: str = MODEL_NAME
    experiment: str = MODEL_NAME
    git_commit: str | None = None  # None: ask git
    feedback_db_url: str = DEFAULT_FEEDBACK_DB_URL  # corrections from the page (webui)
    # New corrections since the champion that make `retrain` train a challenger.
    retrain_min_corrections: int = 200

    @classmethod
    def from_env(cls, environ=os.environ) -> Settings:
        """Defaults, overridden by whichever of ENV_VARS are set and non-empty."""
        values = {f: environ[v] for f, v in ENV_VARS.items() if environ.get(v)}
        if "drawn_per_digit" in values:
            values["drawn_per_digit"] = _drawn_per_digit(values["drawn_per_digit"])
        if "retrain_min_corrections" in values:
            values["retrain_min_corrections"] = _whole(values["retrain_min_corrections"],
                                                       "RETRAIN_MIN_CORRECTIONS")
        return cls(**values)

    @property
    def base_dir(self) -> str:
        """The folder holding the numbered version directories."""
        return os.path.join(self.models_dir, self.model_name)



MAX_DRAWN_PER_DIGIT = 800  # MNIST's test split has 892 fives; a few are passed over


def _drawn_per_digit(text: str) -> int:
    """DRAWN_DIGITS_PER_DIGIT as a number the test split can supply, or a clear ValueError."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_DRAWN_PER_DIGIT:
        raise ValueError(f"DRAWN_DIGITS_PER_DIGIT must be a whole number from 1 to "
                         f"{MAX_DRAWN_PER_DIGIT}, got {text!r}")
    return int(text)


def _whole(text: str, variable: str) -> int:
    """A variable that must be a whole number of at least 1, or a clear ValueError."""
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{variable} must be a whole number of at least 1, got {text!r}")
    return int(text)
