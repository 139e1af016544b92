"""Render the kustomize overlays in k8s/ with `kubectl kustomize`, as a cluster would get them.

Shared by the schema, policy and contract checks in this folder. kubectl renders offline: no
cluster is needed.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))


@functools.cache
def rendered_text(overlay: str) -> str:
    result = subprocess.run([tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[dict]:
    """The overlay's objects, as `kubectl kustomize k8s/overlays/<overlay>` prints them."""
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def find_prefixed(docs: list[dict], kind: str, prefix: str) -> dict:
    """A generated object (kustomize adds a content hash to its name)."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)]
    assert len(matches) == 1, f"expected one {kind} {prefix}*, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, PodSpec) of every workload: Deployments, StatefulSets, Jobs, CronJobs."""
    specs = []
    for doc in docs:
        spec = doc.get("spec") or {}
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template")
        if template:
            specs.append((f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]))
        if doc["kind"] == "InferenceService":
            specs.append((f"InferenceService/{doc['metadata']['name']}", predictor_pod(doc)))
    return specs


PREDICTOR_OWN_FIELDS = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric",
                        "containerConcurrency", "timeout", "canaryTrafficPercent", "labels",
                        "annotations", "model", "tensorflow", "logger", "batcher")


def predictor_pod(isvc: dict) -> dict:
    """The PodSpec a KServe predictor embeds: the predictor less KServe's own fields."""
    return {k: v for k, v in isvc["spec"]["predictor"].items() if k not in PREDICTOR_OWN_FIELDS}


def env(container: dict) -> dict[str, str | dict]:
    """A container's environment: plain values, or the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
