"""The web UI's configuration and its command line."""

from __future__ import annotations

import pytest

from contract import DEFAULT_TF_SERVING_URL, MODEL_NAME, STABLE_LABEL, WEBUI_PORT
from webui import create_app, load_config
from webui.__main__ import parse_args


def test_defaults_come_from_the_contract():
    config = load_config(environ={})
    assert config["TF_SERVING_URL"] == DEFAULT_TF_SERVING_URL
    assert config["MODEL_NAME"] == MODEL_NAME
    assert config["MODEL_LABEL"] == STABLE_LABEL
    assert config["MLFLOW_UI_URL"] == "http://localhost:5000"
    assert config["TF_SERVING_TIMEOUT"] == 5.0


def test_environment_is_read_when_the_factory_runs(monkeypatch):
    monkeypatch.setenv("TF_SERVING_URL", "http://serving:8501/")
    monkeypatch.setenv("MODEL_LABEL", "canary")
    monkeypatch.setenv("TF_SERVING_TIMEOUT", "2.5")
    app = create_app()
    assert app.config["MODEL_LABEL"] == "canary"
    assert app.config["TF_SERVING_TIMEOUT"] == 2.5
    client = app.extensions["webui.tfs"]
    assert client.model_url(label="canary") == "http://serving:8501/v1/models/mnist/labels/canary"


def test_test_config_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("MODEL_NAME", "from-env")
    assert create_app({"MODEL_NAME": "from-test"}).config["MODEL_NAME"] == "from-test"


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_timeout_fails_at_startup_with_its_name(value):
    with pytest.raises(ValueError, match="TF_SERVING_TIMEOUT"):
        load_config(environ={"TF_SERVING_TIMEOUT": value})


def test_mlflow_links_only_for_an_http_tracking_server(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri sets it
    assert not create_app().extensions["webui.runs"].enabled  # sqlite default
    app = create_app({"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert app.extensions["webui.runs"].enabled


def test_command_line_defaults():
    args = parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", WEBUI_PORT)
    assert parse_args(["--host", "0.0.0.0", "--port", "9000"]).port == 9000
