"""Slow clients must not freeze the web UI: 64 connections that send headers and then stall
mid-body, and `/healthz` and a prediction still answer within a second; hundreds that trickle
a byte at a time (so never idle) are closed once their request outlasts --request-timeout.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.images import canvas_png, data_url
from tests.support.servers import free_port, local_webui

pytestmark = pytest.mark.integration

SLOW_CLIENTS = 64
STALLED = (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
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


TRICKLERS = 300
REQUEST_TIMEOUT = 2  # seconds, --request-timeout: short, so the test takes seconds
TRICKLE_EVERY = 0.5  # seconds between two bytes: well inside the idle timeout (30 s)


def test_requests_that_trickle_in_are_closed_at_the_request_timeout():
    """Half trickle their headers, half their body, a byte each per half second: waitress's
    idle timeout never fires. All are closed soon after REQUEST_TIMEOUT, /healthz answering
    within a second all the while."""
    with local_webui(f"http://127.0.0.1:{free_port()}",
                     "--request-timeout", str(REQUEST_TIMEOUT)) as url:
        address = urlsplit(url)
        heads = [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                 b"POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n{"]
        open_ = []
        try:
            for i in range(TRICKLERS):
                sock = socket.create_connection((address.hostname, address.port), timeout=5)
                sock.sendall(heads[i % 2])
                open_.append(sock)
            started = time.monotonic()
            while open_ and time.monotonic() - started < REQUEST_TIMEOUT + 5:
                time.sleep(TRICKLE_EVERY)
                open_ = [sock for sock in open_ if trickle(sock)]
                probe = time.monotonic()
                assert requests.get(f"{url}/healthz", timeout=1).ok
                assert time.monotonic() - probe < 1
            assert open_ == [], f"{len(open_)} of {TRICKLERS} still open after " \
                                f"{time.monotonic() - started:.0f} s"
        finally:
            for sock in open_:
                sock.close()


def trickle(sock: socket.socket) -> bool:
    """Send one more byte; False (and close it) once the server has closed the connection."""
    try:
        sock.sendall(b"a")
        sock.setblocking(False)
        try:
            closed = sock.recv(1) == b""
        except BlockingIOError:
            closed = False
        finally:
            sock.setblocking(True)
    except OSError:  # reset by the server
        closed = True
    if closed:
        sock.close()
    return not closed


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_request_timeout_that_is_not_positive_seconds_is_refused(value, capsys):
    from webui.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--request-timeout", value])
    assert "positive number of seconds" in capsys.readouterr().err
