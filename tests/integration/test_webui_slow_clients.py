"""Slow clients must not freeze the web UI: 64 connections that send headers and then stall
mid-body, and `/healthz` and a prediction still answer within a second.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.images import canvas_png, data_url
from tests.support.servers import local_webui

pytestmark = pytest.mark.integration

SLOW_CLIENTS = 64
STALLED = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 1000\r\n\r\n{\"image\": \"")


@pytest.fixture
def webui_url(serving_url):
    with local_webui(serving_url) as url:
        yield url


def test_stalled_bodies_hold_no_worker(webui_url, mnist):
    digit = {"image": data_url(canvas_png(mnist.x_test[0]))}
    assert requests.post(f"{webui_url}/api/predict", json=digit, timeout=30).ok  # warm
    address = urlsplit(webui_url)
    stalled = []
    try:
        for _ in range(SLOW_CLIENTS):
            stalled.append(socket.create_connection((address.hostname, address.port)))
            stalled[-1].sendall(STALLED)
        time.sleep(1)  # let a server that hands connections to threads hand these over
        started = time.monotonic()
        assert requests.get(f"{webui_url}/healthz", timeout=1).ok
        answer = requests.post(f"{webui_url}/api/predict", json=digit, timeout=1)
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started < 2
    finally:
        for sock in stalled:
            sock.close()
