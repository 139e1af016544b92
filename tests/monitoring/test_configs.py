"""monitoring/ checked by Debian's promtool (`.ci/run` installs prometheus): every Prometheus
config, every rules file (and the PrometheusRule k8s ships), the alerts' unit tests, and the
Grafana provisioning that reads them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack import monitoring
from devstack.config import StackConfig
from tests.k8s.manifests import ROOT, find, render
from tests.support.tools import tool

pytestmark = pytest.mark.k8s

MONITORING = ROOT / "monitoring"
CONFIGS = [MONITORING / "prometheus.yml"]
RULES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_promtool_accepts_the_config(config):
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rule files found" in result.stdout


def test_promtool_accepts_the_config_make_up_writes(tmp_path):
    shutil.copytree(MONITORING, tmp_path / "monitoring")
    config = StackConfig(mlflow_port=15000, rest_port=18501, webui_port=18080,
                         prometheus="/usr/bin/prometheus", root=tmp_path)
    path = tmp_path / monitoring.write_config(config)
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job["static_configs"][0]["targets"]
            for job in yaml.safe_load(path.read_text())["scrape_configs"]}
    assert jobs == {"tfserving": ["127.0.0.1:18501"], "webui": ["127.0.0.1:18080"],
                    "mlflow": ["127.0.0.1:15000"]}


def test_every_rules_file_passes_promtool():
    assert RULES
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_k8s_ships_passes_promtool(tmp_path):
    rule = find(render("production"), "PrometheusRule", "digitops")
    path = tmp_path / "from-k8s.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    assert RULE_TESTS
    for test in RULE_TESTS:
        result = promtool("test", "rules", str(test))
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = {rule["alert"] for path in RULES for group in yaml.safe_load(path.read_text())[
        "groups"] for rule in group["rules"] if "alert" in rule}
    fired = {case["alertname"] for path in RULE_TESTS
             for test in yaml.safe_load(path.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts == fired


def test_grafana_reads_the_prometheus_compose_runs():
    datasources = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml")
                                 .read_text())["datasources"]
    (source,) = datasources
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    board = json.loads((MONITORING / "grafana/dashboards/digitops.json").read_text())
    assert board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/digitops.yml")
                              .read_text())["providers"][0]
    assert Path(provider["options"]["path"]) == Path("/var/lib/grafana/dashboards")


def test_rules_and_dashboard_name_only_series_the_web_ui_exports():
    """An alert on a series nobody exports never fires: hold the names to webui/metrics.py."""
    import re

    from webui.metrics import Metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
    exported = {metric.name + suffix for metric in Metrics().registry.collect()
                for suffix in suffixes.get(metric.type, ("",))}
    texts = [p.read_text() for p in (ROOT / "monitoring").rglob("*") if p.suffix in
             (".yml", ".yaml", ".json") and "tests" not in p.parts]
    used = {name for text in texts for name in re.findall(r"\bwebui_[a-z_]+", text)}
    assert used and used <= exported, used - exported
