"""Versions published while serving: hot reload under load, and a version that fails to load.

These publish into the served repository, so against a TF_SERVING_URL they need
TF_SERVING_MODELS_DIR (the host folder the server reads); they are skipped without it.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.contract import repository

pytestmark = pytest.mark.contract


@pytest.fixture
def models_dir(target):
    if target.models_dir is None:
        pytest.skip("set TF_SERVING_MODELS_DIR to the folder TF_SERVING_URL serves from")
    return target.models_dir


def newest(api, model: str, available_only: bool = False) -> int:
    """The highest version in the status (of the AVAILABLE ones, with available_only)."""
    return max(int(v) for v, s in api.status(model).items()
               if s["state"] == "AVAILABLE" or not available_only)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


def test_hot_reload_fails_no_request_in_flight(api, models_dir):
    current = newest(api, "hot_reload")  # version N answers x/2 + N + 1
    url = f"{api.url}/v1/models/hot_reload:predict"
    answers: list[tuple[int, object]] = []
    stop = threading.Event()

    def client():
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(url, json={"instances": [0.0]}, timeout=30)
                answers.append((r.status_code, r.json().get("predictions")))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(answers) > 20, 30, "requests flowing before the publish")
        repository.publish(models_dir / "hot_reload", current + 1,
                           repository.half_plus_two(offset=current + 2.0))
        published = time.monotonic()
        wait_for(lambda: api.status("hot_reload").get(str(current + 1), {}).get("state")
                 == "AVAILABLE", 5, f"version {current + 1} AVAILABLE")
        assert time.monotonic() - published <= 5
        wait_for(lambda: answers[-1][1] == [current + 2.0], 5, "the new version answering")
        time.sleep(0.2)  # keep requests flowing while the old version is unloaded
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert {code for code, _ in answers} == {200}
    assert {tuple(p) for _, p in answers} <= {(current + 1.0,), (current + 2.0,)}


def test_a_version_that_fails_to_load_leaves_the_served_one(api, target, models_dir):
    served = newest(api, "broken", available_only=True)
    bad = newest(api, "broken") + 1  # earlier runs against a real server leave broken ones
    repository.publish(models_dir / "broken", bad, repository.broken)
    failed = wait_for(lambda: api.status("broken").get(str(bad)), 10,
                      f"version {bad} in the status")
    if target.local:  # TF Serving retries for minutes (LOADING) before it gives up (END)
        failed = wait_for(lambda: (api.status("broken")[str(bad)]["state"] == "END"
                                   and api.status("broken")[str(bad)]), 10, "the load to fail")
    assert failed["state"] != "AVAILABLE"
    if failed["state"] == "END":
        assert failed["status"]["error_code"] != "OK"
        assert failed["status"]["error_message"]
    assert api.status("broken")[str(served)]["state"] == "AVAILABLE"
    r = api.predict("broken", {"instances": [2.0]})
    assert r.status_code == 200
    assert r.json() == {"predictions": [3.0]}
