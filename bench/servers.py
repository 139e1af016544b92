"""Our model server and web UI on free loopback ports, for the benchmarks (never run by CI).

Each server runs in its own process group from the repo root, with its output discarded, and
is stopped with the block that started it. A server that exits or is not ready in time ends
the benchmark with a message saying which.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from contract import LOOPBACK, MODEL_NAME, serving_version
from serving.config import parse_args

ROOT = Path(__file__).resolve().parents[1]


# The TensorFlow threading of serving/tfserving.flags, which every stack runs TF Serving with,
# so the benchmarks time our server as the stacks run it.
STACK_INTRA_OP_THREADS = parse_args(
    (ROOT / "serving" / "tfserving.flags").read_text().split()).tensorflow_intra_op_parallelism
AS_THE_STACKS = f"--tensorflow_intra_op_parallelism={STACK_INTRA_OP_THREADS}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(args: list[str], ready, what: str, env: dict | None = None,
            timeout: float = 180) -> Iterator[subprocess.Popen]:
    """Run `args` until the block ends, once `ready()` is true (a refused probe is not)."""
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode} before it was ready")
            with contextlib.suppress(requests.RequestException):
                if ready():
                    break
            if time.monotonic() > deadline:
                sys.exit(f"{what} was not ready after {timeout:.0f} s")
            time.sleep(0.2)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def answers(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


@contextlib.contextmanager
def model_server(*flags: str, model_name: str = MODEL_NAME) -> Iterator[tuple[str, str]]:
    """`python -m serving` with `flags` (a models.config or a base path, batching...).

    Yields its REST URL and gRPC target once `model_name` has an AVAILABLE version.
    """
    rest, grpc = free_port(), free_port()
    url = f"http://{LOOPBACK}:{rest}"

    def ready() -> bool:
        r = requests.get(f"{url}/v1/models/{model_name}", timeout=2)
        return r.ok and serving_version(r.json()["model_version_status"]) is not None

    with running([sys.executable, "-m", "serving", f"--host={LOOPBACK}", f"--port={grpc}",
                  f"--rest_api_port={rest}", *flags], ready, "python -m serving"):
        yield url, f"{LOOPBACK}:{grpc}"


@contextlib.contextmanager
def web_ui(tf_serving_url: str, env: dict | None = None) -> Iterator[str]:
    """`python -m webui` in front of `tf_serving_url`; yields its URL once /readyz is 200."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with running([sys.executable, "-m", "webui", "--host", LOOPBACK, "--port", str(port)],
                 lambda: answers(f"{url}/readyz"), "python -m webui",
                 env={"TF_SERVING_URL": tf_serving_url, **(env or {})}, timeout=60):
        yield url
