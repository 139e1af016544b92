"""Start real servers on free loopback ports for tests: wait until ready, stop on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

from contract import serving_version

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], timeout: float, what: str, proc=None) -> None:
    """Poll `ready` until it is true; fail with `what` after `timeout` or if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")


def until_linked(predict: Callable[[], dict], timeout: float = 30) -> dict:
    """Call `predict` until its answer links the MLflow run: the web UI looks runs up in the
    background and answers without the link until MLflow has told it."""
    answers: list[dict] = []

    def linked() -> bool:
        answers.append(predict())
        return answers[-1]["model"]["run"] is not None

    wait_until(linked, timeout, "an answer with its MLflow run link")
    return answers[-1]


@contextlib.contextmanager
def process(args: list[str], ready: Callable[[], bool], what: str, timeout: float = 120,
            env: dict | None = None, log: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run `args` (from the repo root) until the block ends; `ready` is the readiness probe."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(ready, timeout, what, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def model_available(url: str, model: str = "mnist") -> bool:
    r = requests.get(f"{url}/v1/models/{model}", timeout=2)
    return r.ok and serving_version(r.json()["model_version_status"]) is not None


@contextlib.contextmanager
def local_serving(model_config_file: Path, port: int | None = None,
                  log: Path | None = None, flags: tuple[str, ...] = ()) -> Iterator[str]:
    """Run `python -m serving` on a models.config; yield its REST base URL once AVAILABLE.

    Its gRPC API gets a free port too, so servers started side by side do not collide.
    `flags` are more of its command line, e.g. --model_config_file_poll_wait_seconds=1.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "serving", "--host=127.0.0.1", f"--port={free_port()}",
            f"--rest_api_port={port}",
            f"--model_config_file={model_config_file}",
            "--file_system_poll_wait_seconds=1", *flags]
    with process(args, lambda: model_available(url), f"python -m serving on {port}", log=log):
        yield url


@contextlib.contextmanager
def local_webui(serving_url: str, *args: str, **env: str) -> Iterator[str]:
    """Run `python -m webui ARGS` on a free port in front of `serving_url`; yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "webui", "--port", str(port), *args],
                 lambda: requests.get(f"{url}/healthz", timeout=1).ok,
                 f"python -m webui on {port}", timeout=60,
                 env={"TF_SERVING_URL": serving_url, **env}):
        yield url


@contextlib.contextmanager
def local_mlflow(tracking_uri: str, artifacts: Path, log: Path | None = None) -> Iterator[str]:
    """Run `mlflow server` on a store on a free port; yield its URL once the registry answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--default-artifact-root", str(artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # Ready means the registry answers, not just /health: the first query loads the store.
    probe = f"{url}/api/2.0/mlflow/registered-models/get?name=mnist"
    with process(args, lambda: requests.get(probe, timeout=10).ok, "mlflow server",
                 timeout=120, log=log, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}):
        yield url


NGINX_CONFIG = """\
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_max_body_size 4m;
    client_body_buffer_size 4m;  # whole bodies in memory: no temp files for nginx's user
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream replicas {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_buffering off;
            proxy_set_header Host $http_host;  # the client's Host, as an ingress passes it
        }}
    }}
}}
"""


@contextlib.contextmanager
def round_robin_nginx(nginx: str, upstreams: list[str], root: Path) -> Iterator[str]:
    """Run Debian's nginx on a free loopback port, round-robin over `upstreams`; yield its URL.

    Its config, pid and logs live under `root`; `nginx` is the binary's path.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    servers = "\n".join(f"        server {urlsplit(u).netloc};" for u in upstreams)
    config = root / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(root=root, port=port, servers=servers))
    args = [nginx, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
    with process(args, lambda: requests.get(f"{url}/healthz", timeout=1).ok,
                 f"nginx on {port}", timeout=30, log=root / "nginx.out"):
        yield url
