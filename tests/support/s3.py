"""An S3-compatible server for tests: moto's server mode (PyPI `moto[server]`) on a free
loopback port. It speaks the S3 REST API that boto3, MLflow and MinIO clients use; no MinIO
server installs here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.support.servers import free_port, process

# moto accepts any keys; these make boto3 sign requests as it would for MinIO or AWS.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "digitops-test", "AWS_SECRET_ACCESS_KEY": "digitops-test",
               "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_server(log: Path | None = None) -> Iterator[str]:
    """Run moto's S3 server until the block ends; yield its endpoint URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with process(args, lambda: requests.get(url, timeout=1).status_code == 200,
                 f"moto S3 server on {port}", timeout=60, log=log):
        yield url
