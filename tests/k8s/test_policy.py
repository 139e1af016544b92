"""checkov, a maintained policy linter, passes every rendered overlay with the exceptions of
k8s/.checkov.yaml (each with its reason) and the per-object checkov.io/skip annotations.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import K8S, OVERLAYS, pod_specs, render, rendered_text
from tests.support.tools import tool

pytestmark = pytest.mark.k8s

CONFIG = K8S / ".checkov.yaml"
# `make tools` installs checkov beside the project's venv: its pins clash with ours.
CHECKOV_BIN = Path(sys.prefix + "-checkov") / "bin"


def checkov(folder: Path) -> dict:
    """Run checkov on the manifests in `folder`; its JSON report."""
    result = subprocess.run([tool("checkov", CHECKOV_BIN), "--directory", str(folder),
                             "--config-file", str(CONFIG), "--output", "json"],
                            capture_output=True, text=True, timeout=600)
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def failed(report: dict) -> list[str]:
    return [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]


def test_every_overlay_passes_checkov(tmp_path):
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(rendered_text(overlay))
    report = checkov(tmp_path)
    assert report["summary"]["passed"] > 500
    assert failed(report) == []


def test_the_exceptions_are_few_and_each_has_a_reason():
    lines = CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]
    assert len(skips) <= 6
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f"no reason above {lines[i].strip()}"


def test_checkov_flags_root_and_latest(tmp_path):
    docs = copy.deepcopy(render("local"))
    webui = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "webui")
    pod = webui["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"], pod["securityContext"]["runAsUser"]
    pod["containers"][0]["image"] = "digitops-webui:latest"
    del pod["containers"][0]["readinessProbe"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(docs))
    flagged = {line.split()[0] for line in failed(checkov(tmp_path))
               if "webui" in line}
    assert {"CKV_K8S_14", "CKV_K8S_23", "CKV_K8S_9"} <= flagged


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_runs_as_root_or_writes_its_image(overlay):
    """What the linter checks, stated for our own manifests too: it is the contract."""
    for where, spec in pod_specs(render(overlay)):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "memory" in container["resources"]["limits"], where
            assert container["resources"]["requests"], where
