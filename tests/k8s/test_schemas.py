"""Every overlay renders and every object is valid: Kubernetes' own kinds against the bundled
schemas of kubernetes-validate (strict: unknown fields fail), the CRDs against schemas/.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s.manifests import OVERLAYS, predictor_pod, render

pytestmark = pytest.mark.k8s

# The oldest Kubernetes we promise; kubernetes-validate bundles its schemas.
KUBERNETES_VERSION = "1.30"
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {"PrometheusRule": "prometheusrule.json",
               "InferenceService": "inferenceservice.json"}


def validate(doc: dict) -> None:
    """Raise if the object is not valid for its kind."""
    if doc["kind"] in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["kind"]]).read_text())
        jsonschema.validate(doc, schema)
        if doc["kind"] == "InferenceService":  # and its embedded PodSpec, as a Pod's
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
                 "spec": predictor_pod(doc)}, KUBERNETES_VERSION, strict=True)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_overlays_are_the_documented_ones():
    assert OVERLAYS == ["kserve", "local", "production"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(overlay):
    docs = render(overlay)
    assert len(docs) > 15
    failures = []
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {err.message} "
                            f"at {'/'.join(map(str, err.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema for "
                            f"{doc['apiVersion']} {doc['kind']} (add one to tests/k8s/schemas)")
    assert failures == []


def test_the_crds_are_validated_where_they_are_used():
    kinds = {doc["kind"] for overlay in OVERLAYS for doc in render(overlay)}
    assert set(CRD_SCHEMAS) <= kinds


def _first(overlay: str, kind: str) -> dict:
    return copy.deepcopy(next(d for d in render(overlay) if d["kind"] == kind))


def _typo_in_deployment(doc):
    doc["spec"]["replica"] = doc["spec"].pop("replicas")


def _probe_port_as_list(doc):
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [1]


def _canary_out_of_range(doc):
    doc["spec"]["predictor"]["canaryTrafficPercent"] = 150


def _typo_in_predictor_container(doc):
    doc["spec"]["predictor"]["containers"][0]["arg"] = ["--port=8500"]


def _rule_without_expr(doc):
    del doc["spec"]["groups"][0]["rules"][0]["expr"]


def _bad_duration(doc):
    doc["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"


@pytest.mark.parametrize(("overlay", "kind", "break_it"), [
    ("local", "Deployment", _typo_in_deployment),
    ("local", "Deployment", _probe_port_as_list),
    ("kserve", "InferenceService", _canary_out_of_range),
    ("kserve", "InferenceService", _typo_in_predictor_container),
    ("production", "PrometheusRule", _rule_without_expr),
    ("production", "PrometheusRule", _bad_duration),
], ids=lambda v: getattr(v, "__name__", v))
def test_the_validation_catches_a_broken_object(overlay, kind, break_it):
    doc = _first(overlay, kind)
    validate(doc)
    break_it(doc)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(doc)
