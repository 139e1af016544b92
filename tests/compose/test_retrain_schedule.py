"""Where each stack schedules `python -m training retrain`: compose profile `retrain` and the
`make up` role with RETRAIN_INTERVAL, held to the trainer's own parser and settings. (The
Kubernetes CronJob: tests/k8s.) No Docker engine needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack import __main__ as devstack_cli
from devstack import roles
from devstack.config import StackConfig
from tests.compose import composefile
from tests.compose.composefile import COMPOSE_FILE, ENV_EXAMPLE, ROOT
from tests.support.tools import tool
from training.cli import build_parser
from training.config import ENV_VARS, Settings

pytestmark = pytest.mark.compose


@pytest.fixture(scope="module")
def services() -> dict:
    return composefile.load({"RETRAIN_INTERVAL": "900"})["services"]


def test_the_retrain_profile_runs_retrain_every_interval_with_the_trainers_settings(services):
    retrain, trainer = services["retrain"], services["trainer"]
    assert retrain["profiles"] == ["retrain"] and retrain["restart"] == "unless-stopped"
    args = build_parser().parse_args(composefile.command(retrain))
    assert (args.command, args.every) == ("retrain", 900)
    environment = composefile.environment(retrain)
    assert environment == {**composefile.environment(trainer), "RETRAIN_MIN_CORRECTIONS": "200"}
    assert Settings.from_env(environment).retrain_min_corrections == 200
    assert set(environment) & set(ENV_VARS.values()) >= {"FEEDBACK_DB_URL",
                                                          "RETRAIN_MIN_CORRECTIONS"}
    assert retrain["image"] == trainer["image"] and retrain["volumes"] == trainer["volumes"]
    assert retrain["depends_on"]["trainer"] == {"condition": "service_completed_successfully"}


def test_docker_compose_renders_the_profile():
    program = tool("docker-compose", Path(sys.executable).parent)
    rendered = subprocess.run(
        [program, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "--profile",
         "retrain", "config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    service = yaml.safe_load(rendered.stdout)["services"]["retrain"]
    assert composefile.command(service) == ["retrain", "--every", "3600"]
    assert service["environment"]["FEEDBACK_DB_URL"] == "sqlite:////feedback/feedback.db"


def _config(environ: dict) -> StackConfig:
    args = devstack_cli.build_parser().parse_args(["up"])
    return StackConfig.from_args(args, environ={"PATH": "/usr/bin:/bin", **environ})


def test_make_up_adds_a_retrain_role_only_when_retrain_interval_is_set():
    assert "retrain" not in [r.name for r in roles.all_roles(_config({}))]
    config = _config({"RETRAIN_INTERVAL": "600"})
    (role,) = [r for r in roles.all_roles(config) if r.name == "retrain"]
    args = build_parser().parse_args(role.args[3:])  # after python -m training
    assert (args.command, args.every) == ("retrain", 600)
    assert role.env == roles.trainer(config).env  # the same MLflow, models and store
    assert role.probe() == "every 600 s"  # long-running: restarted if it ever exits
    with pytest.raises(ValueError, match="RETRAIN_INTERVAL must be a whole number"):
        _config({"RETRAIN_INTERVAL": "hourly"})
