"""Read TF Serving's `models.config` (a ModelServerConfig text proto).

The trainer writes it (training/models_config.py); TF Serving and `python -m serving` read it,
both through tensorflow-serving-api's own proto.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


def read(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    """Parse a models.config file; raises text_format.ParseError on a malformed one."""
    return text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())
