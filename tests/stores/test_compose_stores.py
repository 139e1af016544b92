"""Paper checks of the compose options this layer adds: docker-compose.stores.yml (MLflow on
PostgreSQL and MinIO) and the `monitoring` profile, with Debian's docker-compose and our own
reading of the files. No Docker engine needed.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.compose import composefile
from tests.k8s.manifests import ROOT
from tests.support.tools import tool

pytestmark = pytest.mark.compose

STORES_FILE = ROOT / "docker-compose.stores.yml"
SECRETS = {"POSTGRES_PASSWORD": "pw-from-env", "MINIO_ROOT_PASSWORD": "key-from-env"}
STORE_FLAGS = ("--backend-store-uri=", "--artifacts-destination=")


def _config(files: list, env: dict, *extra: str) -> subprocess.CompletedProcess:
    args = [tool("docker-compose")]
    for path in files:
        args += ["-f", str(path)]
    return subprocess.run([*args, *extra, "config"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **env})


def test_docker_compose_accepts_the_stores_override_with_passwords_from_the_environment():
    result = _config([composefile.COMPOSE_FILE, STORES_FILE], SECRETS)
    assert result.returncode == 0, result.stderr
    assert "postgresql+psycopg://mlflow:pw-from-env@postgres:5432/mlflow" in result.stdout


def test_the_stores_override_refuses_to_start_without_passwords():
    result = _config([composefile.COMPOSE_FILE, STORES_FILE], {})
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr or \
        "set MINIO_ROOT_PASSWORD in .env" in result.stderr


def test_stores_override_changes_only_mlflow_s_stores():
    base = composefile.command(composefile.load()["services"]["mlflow"])
    override = composefile.command(composefile.load(SECRETS, STORES_FILE)["services"]["mlflow"])
    assert [a for a in override if not a.startswith(STORE_FLAGS)] == \
        [a for a in base if not a.startswith(STORE_FLAGS)]
    stores = dict(a.split("=", 1) for a in override if a.startswith(STORE_FLAGS))
    assert stores["--backend-store-uri"].startswith("postgresql+psycopg://")
    assert stores["--artifacts-destination"].startswith("s3://")


def test_stores_services_run_as_non_root_on_pinned_images():
    services = composefile.load(SECRETS, STORES_FILE)["services"]
    for name in ("postgres", "minio", "minio-bucket"):
        uid = str(services[name]["user"]).split(":")[0]
        assert uid not in ("", "0", "root"), name
        tag = services[name]["image"].rpartition(":")[2]
        assert tag and tag != "latest", name


def test_the_mlflow_image_installs_the_store_drivers():
    """psycopg for PostgreSQL, boto3 for s3://, the exporter for --expose-prometheus."""
    result = subprocess.run(["python3", "docker/requirements.py", "tracking-server"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    names = {line.split("==")[0].split("[")[0] for line in result.stdout.split()}
    assert {"mlflow", "psycopg", "boto3", "prometheus-flask-exporter"} <= names
    assert "requirements.py tracking-server" in (ROOT / "docker/mlflow.Dockerfile").read_text()


def test_monitoring_profile_mounts_what_monitoring_holds():
    services = composefile.load()["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    mounts = composefile.mounts(prometheus)
    assert mounts["/etc/prometheus"].startswith("./monitoring")
    config = next(a for a in composefile.command(prometheus) if a.startswith("--config.file="))
    assert (ROOT / "monitoring" / config.rsplit("/", 1)[1]).is_file()
    grafana_mounts = composefile.mounts(grafana)
    assert (ROOT / grafana_mounts["/etc/grafana/provisioning"]).is_dir()
    assert (ROOT / grafana_mounts["/var/lib/grafana/dashboards"] / "digitops.json").is_file()
    for service in (prometheus, grafana):
        (published,) = service["ports"]
        assert published.startswith("127.0.0.1:"), published
