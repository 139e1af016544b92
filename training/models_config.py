"""Write TF Serving's `models.config` (a ModelServerConfig text proto): the trainer's job.

`python -m training promote` writes it; TF Serving and `python -m serving` only read it. The
file goes through tensorflow-serving-api's own proto, so it is always one TF Serving accepts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contract import CANARY_LABEL, MODEL_NAME, STABLE_LABEL

# Where TF Serving sees models/<name> in docker-compose.yml (./models is mounted at /models).
CONTAINER_BASE_PATH = f"/models/{MODEL_NAME}"

HEADER = (
    "# Written by `python -m training promote`: label stable = MLflow alias champion,\n"
    "# canary = challenger. Edit through promote, not by hand.\n"
)


def build(
    stable: int, canary: int | None = None, *, name: str = MODEL_NAME,
    base_path: str = CONTAINER_BASE_PATH,
) -> model_server_config_pb2.ModelServerConfig:
    """One model with the champion (and challenger) loaded, labelled stable (and canary)."""
    canary = stable if canary is None else canary
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.extend(sorted({stable, canary}))
    model.version_labels[STABLE_LABEL] = stable
    model.version_labels[CANARY_LABEL] = canary
    return config


def write(config: model_server_config_pb2.ModelServerConfig, path: str | Path) -> Path:
    """Write atomically: TF Serving polls this file and must never read half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".models.config.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(HEADER + text_format.MessageToString(config))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
