"""Check, before anything starts, that every port the stack needs is free.

A port counts as taken when something accepts connections on it or when it cannot be bound.
For a taken port we ask it a few HTTP questions to tell the user what holds it.
"""

from __future__ import annotations

import socket
from collections import Counter

from contract import LOOPBACK
from devstack.config import PortUse, StackConfig
from devstack.fetch import fetch, fetch_json


def is_taken(port: int) -> bool:
    """True when something listens on `port` (loopback or any interface)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((LOOPBACK, port)) == 0:
            return True
    # python -m serving and tensorflow_model_server bind every interface: try both.
    for host in (LOOPBACK, "0.0.0.0"):
        with socket.socket() as sock:
            # Servers set SO_REUSEADDR too, so a port in TIME_WAIT from the last run is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return True
    return False


def identify(port: int, model_name: str) -> str | None:
    """Name what answers on `port` (an MLflow server, a TF Serving, a web UI), if we can."""
    def url(path: str) -> str:
        return f"http://{LOOPBACK}:{port}{path}"

    answer = fetch_json(url(f"/v1/models/{model_name}"), timeout=1)
    if answer is None:
        return None  # not HTTP, or not answering
    body = answer[1]
    if isinstance(body, dict) and ("model_version_status" in body
                                   or "Servable not found" in str(body.get("error"))):
        return "a TF Serving"
    if fetch(url("/health"), timeout=1) == (200, b"OK"):
        return "an MLflow server"
    answer = fetch(url("/readyz"), timeout=1)
    if answer and answer[0] in (200, 503) and b'"status"' in answer[1]:
        return "a DigitOps web UI"
    return "an HTTP server"


def problems(config: StackConfig) -> list[str]:
    """One message per port that is shared by two roles or already taken; empty when all free."""
    uses = config.ports
    counts = Counter(use.port for use in uses)
    messages = [
        f"port {port} is set for both {' and '.join(u.what for u in uses if u.port == port)}; "
        "give each its own" for port, n in counts.items() if n > 1
    ]
    messages += [_taken_message(use, config.model_name) for use in uses if is_taken(use.port)]
    return messages


def _taken_message(use: PortUse, model_name: str) -> str:
    holder = identify(use.port, model_name)
    who = f"by {holder}" if holder else f"(another {use.what}?)"
    return (f"port {use.port} ({use.what}) is taken {who}: is `docker compose up` or another "
            f"`make up` running? Stop it, or choose another port: {use.env}=<port> make up "
            f"(or {use.flag})")
