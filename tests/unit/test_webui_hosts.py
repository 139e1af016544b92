"""The Host header: names outside WEBUI_ALLOWED_HOSTS get a 400 in JSON and change nothing.

A DNS-rebinding page reaches the UI under its own name; a probe or Prometheus by a pod IP.
"""

from __future__ import annotations

import pytest

from tests.support.servers import free_port
from tests.unit.test_feedback_store import answer
from webui import create_app, pending


def app_with(tmp_path, allowed: str = "", bind_host: str | None = None):
    return create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}",
                       "FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db",
                       "WEBUI_ALLOWED_HOSTS": allowed}, bind_host=bind_host)


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8080", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:18080",
    "[::1]", "[::1]:8080"])
def test_loopback_names_are_answered_by_default(tmp_path, host):
    assert app_with(tmp_path).test_client().get("/", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", [
    "rebind.example", "rebind.example:8080", "localhost.rebind.example", "127.0.0.1.nip.io:8080",
    "10.0.0.7:8080", "[::2]:8080", "localhost:8080.rebind.example"])
def test_other_names_get_a_400_that_says_what_to_do_and_store_nothing(tmp_path, host):
    app = app_with(tmp_path)
    kept = answer(pending.new_id())
    app.extensions["webui.pending"].add(kept)
    client = app.test_client()
    for response in (
            client.get("/", headers={"Host": host}),
            client.post("/api/feedback", headers={"Host": host},
                        json={"prediction_id": kept.prediction_id, "digit": 4})):
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.is_json and "WEBUI_ALLOWED_HOSTS" in response.get_json()["error"]
        said = "not a valid host" if host.endswith(".rebind.example") and ":" in host \
            else f'"{host}"'  # a port of letters is no host at all
        assert said in response.get_json()["error"]
    assert app.extensions["webui.store"].count() == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_answer_a_pod_ip(tmp_path, path):
    response = app_with(tmp_path).test_client().get(path, headers={"Host": "10.244.1.7:8080"})
    assert response.status_code in (200, 503)  # /readyz: no model service here


def test_the_bind_address_is_allowed_too(tmp_path):
    client = app_with(tmp_path, bind_host="192.168.1.20").test_client()
    assert client.get("/", headers={"Host": "192.168.1.20:8080"}).status_code == 200
    assert client.get("/", headers={"Host": "192.168.1.21:8080"}).status_code == 400
    ipv6 = app_with(tmp_path, bind_host="fd00::5").test_client()
    assert ipv6.get("/", headers={"Host": "[fd00::5]:8080"}).status_code == 200


def test_the_setting_replaces_the_default_and_star_is_any_text(tmp_path):
    client = app_with(tmp_path, "webui, webui:*, *.digits.example").test_client()
    for host, status in [("webui", 200), ("webui:8080", 200), ("a.digits.example", 200),
                         ("digits.example", 400), ("localhost:8080", 400),
                         ("webui.rebind.example", 400)]:
        assert client.get("/", headers={"Host": host}).status_code == status, host
    assert app_with(tmp_path, "*").test_client().get(
        "/", headers={"Host": "anything:1"}).status_code == 200
