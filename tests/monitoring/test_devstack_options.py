"""`make up`'s options from this layer, without starting anything: MLflow's stores from
MLFLOW_BACKEND_STORE_URI / MLFLOW_ARTIFACTS_DESTINATION, and the Prometheus role.
"""

from __future__ import annotations

from pathlib import Path

from devstack import __main__ as cli
from devstack import roles
from devstack.config import StackConfig
from tests.support.tools import tool

POSTGRES = "postgresql+psycopg://mlflow:pw@db.internal:5432/mlflow"


def config_from(environ: dict) -> StackConfig:
    args = cli.build_parser().parse_args(["up"])
    return StackConfig.from_args(args, environ={"PATH": "/usr/bin:/bin", **environ})


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_mlflow_defaults_to_sqlite_and_mlruns():
    args = roles.mlflow(config_from({})).args
    assert _flag(args, "--backend-store-uri") == "sqlite:///mlruns/mlflow.db"
    assert _flag(args, "--artifacts-destination") == "mlruns/artifacts"


def test_mlflow_takes_its_stores_from_the_environment():
    config = config_from({"MLFLOW_BACKEND_STORE_URI": POSTGRES,
                          "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts"})
    args = roles.mlflow(config).args
    assert _flag(args, "--backend-store-uri") == POSTGRES
    assert _flag(args, "--artifacts-destination") == "s3://bucket/artifacts"


def test_prometheus_on_path_adds_a_fifth_role_and_its_port(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_PORT", "19090")  # the flags' defaults read it
    config = config_from({"PATH": str(Path(tool("prometheus")).parent)})
    assert config.prometheus == tool("prometheus")
    assert [role.name for role in roles.all_roles(config)][-1] == "prometheus"
    assert ("Prometheus", 19090) in [(use.what, use.port) for use in config.ports]
    assert "--expose-prometheus" in roles.mlflow(config).args


def test_monitoring_off_leaves_the_four_roles():
    config = config_from({"MONITORING": "off"})
    assert config.prometheus is None
    assert [role.name for role in roles.all_roles(config)] == [
        "mlflow", "trainer", "serving", "webui"]
    assert "Prometheus" not in [use.what for use in config.ports]
    assert "--expose-prometheus" not in roles.mlflow(config).args
