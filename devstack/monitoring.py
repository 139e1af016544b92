"""Prometheus for `make up`, where a `prometheus` binary is on PATH: the scrape jobs and alert
rules of monitoring/ (what compose's `monitoring` profile runs), pointed at this stack's ports.

The config is written under mlruns/prometheus/ when the stack starts, so a moved port never
needs an edit; the rules are read where they are, so there is one copy of them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from contract import LOOPBACK
from devstack.config import StackConfig

SOURCE = Path("monitoring/prometheus.yml")  # relative to the checkout, like every path here
HOME = Path("mlruns/prometheus")
CONFIG = HOME / "prometheus.yml"
DATA = HOME / "data"
MLFLOW_METRICS_DIR = HOME / "mlflow-metrics"  # `mlflow server --expose-prometheus`
# One machine: scraping often is cheap, and a prediction shows in a rate within seconds.
INTERVAL = "5s"


def local_config(config: StackConfig) -> dict:
    """monitoring/prometheus.yml with LOOPBACK and this stack's ports for the compose names."""
    settings = yaml.safe_load((config.root / SOURCE).read_text())
    ports = {"tfserving": config.rest_port, "webui": config.webui_port,
             "mlflow": config.mlflow_port}
    settings["global"].update(scrape_interval=INTERVAL, evaluation_interval=INTERVAL)
    settings["rule_files"] = [str(config.root / SOURCE.parent / f)
                              for f in settings["rule_files"]]
    for job in settings["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"{LOOPBACK}:{ports[job['job_name']]}"]}]
    return settings


def write_config(config: StackConfig) -> Path:
    """Write local_config where Prometheus reads it; return that path (relative to the root)."""
    path = config.root / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `make up` from monitoring/prometheus.yml; edit that one.\n"
                    + yaml.safe_dump(local_config(config), sort_keys=False))
    return CONFIG


def command(config: StackConfig) -> list[str]:
    """Write the local config, then return the prometheus command line: that config, data in
    mlruns/, loopback only."""
    return [config.prometheus, f"--config.file={write_config(config)}",
            f"--storage.tsdb.path={DATA}", "--storage.tsdb.retention.time=7d",
            f"--web.listen-address={LOOPBACK}:{config.prometheus_port}"]
