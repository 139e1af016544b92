"""Run links against an MLflow that hangs: one lookup at a time, and nobody waits for it."""

from __future__ import annotations

import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from webui.runs import RunFinder

HANG = 3.0  # seconds the fake MLflow holds each request; the finder gives up after 2


class HangingMLflow(http.server.ThreadingHTTPServer):
    """Answers every request after HANG seconds with a 500; counts requests in flight."""

    def __init__(self):
        self.in_flight = self.most_in_flight = self.requests = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                time.sleep(HANG)
                with server.lock:
                    server.in_flight -= 1
                self.send_error(500)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True


@pytest.fixture
def mlflow():
    server = HangingMLflow()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def timed_finds(finder: RunFinder, n: int) -> list[float]:
    """Call find("1") from n threads at once; return each call's seconds."""
    def one(_):
        started = time.monotonic()
        assert finder.find("1") is None
        return time.monotonic() - started

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_hung_mlflow_costs_one_lookup_and_holds_up_no_request(mlflow):
    url = f"http://127.0.0.1:{mlflow.server_address[1]}"
    finder = RunFinder(url, url, "mnist", timeout=2.0, retry_after=0.2, wait=0.1)
    first = timed_finds(finder, 16)
    assert max(first) < 0.5, first  # the short wait, not the 2 s timeout
    assert mlflow.requests == 1
    time.sleep(HANG)  # past retry_after, and the first request is over on the server too
    again = timed_finds(finder, 16)
    assert max(again) < 1.0, again
    deadline = time.monotonic() + 2  # the retry runs in the background: give it time to arrive
    while mlflow.requests < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mlflow.requests == 2
    assert mlflow.most_in_flight == 1
