"""The rendered manifests hold to contract.py and to what compose runs: names, ports, paths,
flags, config files and alert rules, so the cluster cannot drift from the one-machine stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from contract import (
    CANARY_LABEL,
    GRPC_PORT,
    MLFLOW_PORT,
    MODEL_NAME,
    REST_PORT,
    STABLE_LABEL,
    WEBUI_PORT,
)
from serving import models_config
from tests.compose import composefile
from tests.k8s.manifests import K8S, OVERLAYS, ROOT, env, find, find_prefixed, pod_specs, render
from training.config import ENV_VARS

pytestmark = pytest.mark.k8s

# In a cluster, models.config is the tfserving-config ConfigMap the trainer Jobs patch, mounted
# at /config beside serving/'s static files; every other flag is compose's.
K8S_MODELS_CONFIG = "/config/models.config"
FLAGS = [f"--model_config_file={K8S_MODELS_CONFIG}" if flag.startswith("--model_config_file=")
         else flag for flag in (ROOT / "serving" / "tfserving.flags").read_text().split()]
SERVING_FILES = ("batching.config", "monitoring.config")


@pytest.fixture(scope="module")
def compose() -> dict:
    return composefile.load()["services"]


def _container(spec: dict, name: str | None = None) -> dict:
    containers = spec["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def _serving_containers(docs) -> list[tuple[str, dict]]:
    """The TF Serving container: the tfserving Deployment's, or KServe's predictor's."""
    return [(where, _container(spec)) for where, spec in pod_specs(docs)
            if where in ("Deployment/tfserving", f"InferenceService/{MODEL_NAME}")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_runs_serving_tfserving_flags_on_the_contract_ports(overlay):
    (where, container), = _serving_containers(render(overlay))
    assert container["command"] == ["tensorflow_model_server"], where
    assert container["args"] == FLAGS, where
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == ({REST_PORT} if where.startswith("Inference") else {REST_PORT, GRPC_PORT})
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for flag in FLAGS:  # every file a flag names is in a mounted volume
        value = flag.partition("=")[2]
        if value.startswith("/"):
            assert any(value.startswith(path + "/") for path in mounts), (flag, list(mounts))
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/v1/models/{MODEL_NAME}/labels/{STABLE_LABEL}"
    assert probe["port"] in (REST_PORT, "rest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tf_serving_image_is_composes(overlay, compose):
    (_, container), = _serving_containers(render(overlay))
    assert container["image"] == composefile.interpolate(compose["tfserving"]["image"], {})


def test_tf_serving_config_map_is_serving_s_files_byte_for_byte():
    for overlay in OVERLAYS:
        data = find(render(overlay), "ConfigMap", "tfserving-config")["data"]
        assert sorted(data) == sorted([*SERVING_FILES, "models.config"])
        for name in SERVING_FILES:
            assert data[name] == (ROOT / "serving" / name).read_text(), (overlay, name)


@pytest.mark.parametrize("source", ["tfserving-config", "mnist-models-"])
def test_models_config_serves_the_contract_model_from_the_mounted_volume(source, tmp_path):
    docs = render("kserve" if source.endswith("-") else "local")
    config_map = find_prefixed(docs, "ConfigMap", source) if source.endswith("-") else \
        find(docs, "ConfigMap", source)
    (tmp_path / "models.config").write_text(config_map["data"]["models.config"])
    config = models_config.read(tmp_path / "models.config")
    (model,) = config.model_config_list.config
    assert model.name == MODEL_NAME
    assert {label for label in model.version_labels} == {STABLE_LABEL, CANARY_LABEL}
    container = _container(find(render("local"), "Deployment", "tfserving")["spec"]["template"]
                           ["spec"])  # the predictor mounts the same volume at the same path
    models_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "models")
    assert model.base_path == f"{models_mount}/{MODEL_NAME}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_expose_the_contract_ports(overlay):
    docs = render(overlay)
    expected = {"webui": {WEBUI_PORT}, "mlflow": {MLFLOW_PORT}}
    if overlay != "kserve":
        expected["tfserving"] = {REST_PORT, GRPC_PORT}
    for name, ports in expected.items():
        service = find(docs, "Service", name)
        assert {p["port"] for p in service["spec"]["ports"]} == ports, name
        selector = service["spec"]["selector"]
        assert any(set(selector.items()) <= set(d["spec"]["template"]["metadata"]["labels"]
                                                .items())
                   for d in docs if d["kind"] == "Deployment"), f"{name} selects no pods"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_ui_talks_to_serving_and_mlflow_by_their_service_names(overlay, compose):
    docs = render(overlay)
    container = _container(find(docs, "Deployment", "webui")["spec"]["template"]["spec"])
    assert container["args"] == composefile.command(compose["webui"])
    variables = env(container)
    assert set(variables) == set(composefile.environment(compose["webui"]))
    assert variables["MODEL_NAME"] == MODEL_NAME and variables["MODEL_LABEL"] == STABLE_LABEL
    serving = urlsplit(variables["TF_SERVING_URL"])
    if overlay == "kserve":
        isvc = find(docs, "InferenceService", MODEL_NAME)
        namespace = isvc["metadata"]["namespace"]
        assert serving.hostname == f"{MODEL_NAME}-predictor.{namespace}.svc.cluster.local"
    else:
        assert (serving.hostname, serving.port) == ("tfserving", REST_PORT)
    assert urlsplit(variables["MLFLOW_TRACKING_URI"])[1] == f"mlflow:{MLFLOW_PORT}"
    assert container["ports"][0]["containerPort"] == WEBUI_PORT
    paths = {container["readinessProbe"]["httpGet"]["path"],
             container["livenessProbe"]["httpGet"]["path"]}
    assert paths == {"/readyz", "/healthz"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_ui_answers_its_ingress_service_and_port_forward_names_only(overlay):
    from webui.hosts import AllowedHosts

    docs = render(overlay)
    container = _container(find(docs, "Deployment", "webui")["spec"]["template"]["spec"])
    hosts = AllowedHosts(env(container)["WEBUI_ALLOWED_HOSTS"])
    ingress = [rule["host"] for d in docs if d["kind"] == "Ingress"
               for rule in d["spec"]["rules"] if d["metadata"]["name"] == "webui"]
    namespace = find(docs, "Deployment", "webui")["metadata"].get("namespace", "digitops")
    names = [*ingress, "webui", f"webui:{WEBUI_PORT}", f"webui.{namespace}.svc:{WEBUI_PORT}",
             f"webui.{namespace}.svc.cluster.local", f"localhost:{WEBUI_PORT}"]
    assert [n for n in names if not hosts.allows(n)] == []
    assert not hosts.allows("rebind.example") and not hosts.allows(f"10.244.0.7:{WEBUI_PORT}")


def _flag(args: list[str], name: str) -> str:
    (value,) = [a.partition("=")[2] for a in args if a.startswith(f"--{name}=")]
    return value


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_allows_the_host_names_clients_use(overlay):
    docs = render(overlay)
    deployment = find(docs, "Deployment", "mlflow")
    container = _container(deployment["spec"]["template"]["spec"])
    assert _flag(container["args"], "port") == str(MLFLOW_PORT)
    allowed = _flag(container["args"], "allowed-hosts").split(",")
    namespace = deployment["metadata"]["namespace"]
    for host in ("mlflow", f"mlflow.{namespace}", f"mlflow.{namespace}.svc",
                 f"mlflow.{namespace}.svc.cluster.local", "localhost"):
        assert host in allowed and f"{host}:*" in allowed, host
    # Every $(VAR) the arguments use is defined, from a Secret or a ConfigMap.
    variables = env(container)
    for name in re.findall(r"\$\((\w+)\)", " ".join(container["args"])):
        assert name in variables, name
    assert "secretKeyRef" in variables["MLFLOW_BACKEND_STORE_URI"]
    assert variables["MLFLOW_ARTIFACTS_DESTINATION"]["configMapKeyRef"]["name"] == \
        find_prefixed(docs, "ConfigMap", "mlflow-settings-")["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_digitops_namespace(overlay):
    for doc in render(overlay):
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "digitops", doc["metadata"]["name"]


def test_no_secret_is_committed_only_referenced():
    assert not [d for overlay in OVERLAYS for d in render(overlay) if d["kind"] == "Secret"]
    committed = [p for p in K8S.rglob("*") if p.is_file()
                 and re.search(r"(?i)password\s*[:=]\s*\S{6,}", p.read_text())]
    assert committed == []


# Each trainer Job and the compose service that runs the same command.
TRAINER_JOBS = {"Job/bootstrap": "trainer", "CronJob/train": "trainer",
                "CronJob/promote": "trainer", "CronJob/retrain": "retrain"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_trainer_jobs_set_what_the_trainer_reads(overlay, compose):
    """Exactly the trainer settings compose gives the same command: a Job without one (no
    FEEDBACK_DB_URL made `train --feedback` fail and the promote gate blind) fails here."""
    docs = render(overlay)
    jobs = [(where, spec) for where, spec in pod_specs(docs) if where in TRAINER_JOBS]
    assert sorted(where for where, _ in jobs) == sorted(TRAINER_JOBS)
    training_vars = set(ENV_VARS.values())
    webui = env(_container(find(docs, "Deployment", "webui")["spec"]["template"]["spec"]))
    for where, spec in jobs:
        container = _container(spec)
        variables = env(container)
        read = {name for name in variables if name in training_vars}
        expected = set(composefile.environment(compose[TRAINER_JOBS[where]])) & training_vars
        assert read == expected, (where, sorted(read ^ expected))
        assert variables["FEEDBACK_DB_URL"] == webui["FEEDBACK_DB_URL"], where  # one store
        assert variables["MLFLOW_TRACKING_URI"] == f"http://mlflow:{MLFLOW_PORT}", where
        assert variables["SERVING_BASE_PATH"] == f"{variables['MODELS_DIR']}/{MODEL_NAME}"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert variables["MODELS_DIR"] in mounts and "/scripts" in mounts, where
        assert spec["serviceAccountName"] == "trainer"
        assert container["args"][0].endswith("python /scripts/publish_config.py"), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retrain_runs_on_a_schedule_one_at_a_time(overlay):
    cron = find(render(overlay), "CronJob", "retrain")
    assert not cron["spec"].get("suspend") and cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] <= 3600
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"][0].startswith("python -m training retrain ")
    assert int(env(container)["RETRAIN_MIN_CORRECTIONS"]) >= 1


def test_the_trainer_may_patch_only_the_serving_config():
    docs = render("local")
    (rule,) = find(docs, "Role", "trainer-publishes-models-config")["rules"]
    assert rule["resourceNames"] == ["tfserving-config"] and rule["verbs"] == ["get", "patch"]
    binding = find(docs, "RoleBinding", "trainer-publishes-models-config")
    assert binding["subjects"][0]["name"] == "trainer"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned(overlay):
    for where, spec in pod_specs(render(overlay)):
        for container in spec["containers"] + spec.get("initContainers", []):
            image = container["image"]
            tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
            assert tag and tag != "latest", (where, image)


def test_prometheus_rule_is_the_monitoring_rules_file():
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "digitops.yml").read_text())
    for overlay in ("production", "kserve"):
        assert find(render(overlay), "PrometheusRule", "digitops")["spec"] == rules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scrape_annotations_name_the_metrics_endpoints(overlay):
    expected = {"tfserving": (REST_PORT, "/monitoring/prometheus/metrics"),
                "webui": (WEBUI_PORT, "/metrics"), "mlflow": (MLFLOW_PORT, "/metrics")}
    docs = render(overlay)
    monitoring = (ROOT / "serving" / "monitoring.config").read_text()
    assert f'path: "{expected["tfserving"][1]}"' in monitoring
    for name, (port, path) in expected.items():
        if overlay == "kserve" and name == "tfserving":
            continue
        notes = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert (notes["prometheus.io/port"], notes["prometheus.io/path"]) == (str(port), path)


def test_kserve_canary_is_the_documented_rollout():
    isvc = find(render("kserve"), "InferenceService", MODEL_NAME)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert "canaryTrafficPercent" in (K8S / "README.md").read_text()
    kinds = {d["kind"] + "/" + d["metadata"]["name"] for d in render("kserve")}
    assert not kinds & {f"{kind}/tfserving" for kind in ("Deployment", "Service",
                                                         "PodDisruptionBudget")}


def test_network_policies_let_only_the_ui_reach_serving():
    docs = render("local")
    policy = find(docs, "NetworkPolicy", "tfserving-from-webui")
    sources = [src for rule in policy["spec"]["ingress"] for src in rule["from"]]
    pods = [src["podSelector"]["matchLabels"] for src in sources if "podSelector" in src]
    assert pods == [{"app.kubernetes.io/name": "webui"}]
    assert find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}


def test_publish_script_is_the_one_in_the_config_map():
    data = find_prefixed(render("local"), "ConfigMap", "trainer-scripts-")["data"]
    assert data["publish_config.py"] == (K8S / "base" / "trainer" / "publish_config.py").read_text()


def test_committed_serving_copies_are_current(tmp_path):
    for name in SERVING_FILES:
        assert (K8S / "base" / "tfserving" / name).read_bytes() == \
            (ROOT / "serving" / name).read_bytes(), f"copy serving/{name} to k8s/base/tfserving/"
    from training import models_config as promote_writes

    first = promote_writes.write(promote_writes.build(1), tmp_path / "models.config")
    assert (K8S / "base" / "tfserving" / "models.config").read_bytes() == first.read_bytes(), \
        "the cluster's first models.config is what promote writes for version 1"


def test_every_yaml_in_k8s_is_used_by_a_kustomization():
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text())
        for entry in (doc.get("resources", []) + doc.get("components", [])
                      + doc.get("configurations", [])):
            listed.add((kustomization.parent / entry).resolve())
    files = {p.resolve() for p in K8S.rglob("*.yaml")
             if p.name not in ("kustomization.yaml", ".checkov.yaml")}
    assert files - listed == set(), [str(Path(p).relative_to(K8S)) for p in files - listed]
