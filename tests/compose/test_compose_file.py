"""Paper checks of docker-compose.yml and docker/*.Dockerfile, held to the programs they run.

Every service's command is parsed by the program's own argument parser, its environment is
compared with the variables the program reads, and the paths that join the services (models,
models.config, the serving base path) are followed through the bind mounts. Plus
`docker-compose config` and hadolint. No Docker engine needed.

    pytest tests/compose
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import contract
from tests.compose import composefile, dockerfiles
from tests.compose.composefile import COMPOSE_FILE, ENV_EXAMPLE, ROOT
from tests.support.tools import tool

OFFICIAL_SERVING_IMAGE = "tensorflow/serving:2.20.0"
BASE_IMAGE = "python:3.11-slim-bookworm"
# The official image's entrypoint: these come before the compose command.
OFFICIAL_ENTRYPOINT_FLAGS = [f"--port={contract.GRPC_PORT}",
                             f"--rest_api_port={contract.REST_PORT}"]
LONG_RUNNING = ("mlflow", "tfserving", "webui")


@pytest.fixture(scope="module")
def compose() -> dict:
    return composefile.load()


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


VENV_BIN = Path(sys.executable).parent  # pip-installed tools live beside python


def _names_read(package: str) -> set[str]:
    """Environment variables a package's source reads by name."""
    pattern = re.compile(r"""(?:getenv|environ\.get|environ\[)\(?\s*["']([A-Z][A-Z0-9_]*)["']""")
    return {name for path in (ROOT / package).rglob("*.py")
            for name in pattern.findall(path.read_text())}


def _url(value: str) -> tuple[str, int]:
    parts = urlsplit(value)
    return parts.hostname, parts.port


def _container_port(service: dict, port: int) -> bool:
    return any(str(p).split(":")[-1] == str(port) for p in service.get("ports", []))


# --- the static tools ------------------------------------------------------------------------


def test_docker_compose_config_accepts_the_file():
    program = tool("docker-compose", VENV_BIN)
    for extra in ([], ["--env-file", str(ENV_EXAMPLE)]):
        result = subprocess.run([program, "-f", str(COMPOSE_FILE), *extra, "config", "-q"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", dockerfiles.all_dockerfiles(), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    program = tool("hadolint", VENV_BIN)
    result = subprocess.run([program, "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_has_a_reason():
    text = (ROOT / ".hadolint.yaml").read_text()
    config = yaml.safe_load(text)
    for rule in config.get("ignored") or []:
        line = next(line for line in text.splitlines() if rule in line)
        reason = line.partition("#")[2].strip()
        assert len(reason.split()) >= 3, f"{rule} is ignored without a reason on its line"


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", dockerfiles.all_dockerfiles(), ids=lambda p: p.name)
def test_dockerfile_builds_on_pinned_slim_python_and_runs_as_non_root(dockerfile):
    groups = dockerfiles.stages(dockerfile)
    stage_names = set()
    for group in groups:
        words = group[0].words()
        if words[0] not in stage_names:
            assert words[0] == BASE_IMAGE
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    final = groups[-1]
    user = dockerfiles.last(final, "USER")
    assert user is not None, "the final image must switch to a non-root USER"
    assert user.value.split(":")[0] not in ("root", "0")
    assert dockerfiles.last(final, "ENTRYPOINT") or dockerfiles.last(final, "CMD")


@pytest.mark.parametrize("dockerfile", dockerfiles.all_dockerfiles(), ids=lambda p: p.name)
def test_final_image_carries_no_pip_or_build_stage_leftovers(dockerfile):
    groups = dockerfiles.stages(dockerfile)
    assert len(groups) >= 2, "install in a build stage, copy the result"
    final_runs = " ".join(i.value for i in groups[-1] if i.keyword == "RUN")
    assert "pip " not in final_runs and "apt-get" not in final_runs
    earlier_runs = " ".join(i.value for g in groups[:-1] for i in g if i.keyword == "RUN")
    assert "venv --without-pip" in earlier_runs


def test_every_dockerfile_is_built_by_compose(services):
    built = {Path(s["build"]["dockerfile"]).name for s in services.values() if "build" in s}
    assert built == {p.name for p in dockerfiles.all_dockerfiles()}
    for service in services.values():
        if "build" in service:
            assert service["build"]["context"] == "."
            assert (ROOT / service["build"]["dockerfile"]).is_file()


def test_images_are_pinned(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} names its image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"


def test_tf_serving_image_is_no_older_than_the_training_tensorflow(services):
    assert services["tfserving"]["image"] == OFFICIAL_SERVING_IMAGE
    assert "build" not in services["tfserving"], "a build would retag our image as the official"
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["training"]
    tf_pin = next(p for p in pins if re.match(r"tensorflow\s*==", p))
    trained_with = tuple(int(x) for x in re.findall(r"\d+", tf_pin)[:2])
    served_by = tuple(int(x) for x in OFFICIAL_SERVING_IMAGE.split(":")[1].split(".")[:2])
    assert served_by >= trained_with


def test_each_image_copies_only_what_it_runs():
    copied = {p.name: dockerfiles.copied_sources(dockerfiles.final_stage(p))
              for p in dockerfiles.all_dockerfiles()}
    assert sorted(copied["webui.Dockerfile"]) == ["contract.py", "corrections/", "webui/"]
    assert sorted(copied["serving.Dockerfile"]) == [
        "contract.py", "docker/serving-entrypoint.sh", "serving/"]
    assert copied["mlflow.Dockerfile"] == ["docker/writable-entrypoint.sh"]
    assert sorted(copied["trainer.Dockerfile"]) == [  # corrections/: the store it reads
        "contract.py", "corrections/", "docker/writable-entrypoint.sh", "training/"]


@pytest.mark.parametrize("package, why", [
    ("serving", "the trainer writes models.config itself; serving/ is TF Serving's stand-in"),
    ("webui", "the corrections store is corrections/; the trainer image has no web UI or Flask"),
])
def test_training_never_imports_serving_or_the_web_ui(package, why):
    pattern = re.compile(rf"^\s*(from|import) {package}\b", re.M)
    importing = [p.name for p in (ROOT / "training").rglob("*.py") if pattern.search(p.read_text())]
    assert importing == [], why


def test_web_ui_image_installs_no_tensorflow():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert not [r for r in extras["webui"] if r.lower().startswith("tensorflow")]
    runs = " ".join(i.value for i in dockerfiles.instructions(ROOT / "docker/webui.Dockerfile")
                    if i.keyword == "RUN")
    assert re.findall(r"requirements\.py (\S+)", runs) == ["webui"]


# --- wiring between the services --------------------------------------------------------------


def test_start_order_and_restart_policies(services):
    depends = {name: {dep: spec["condition"] for dep, spec in s.get("depends_on", {}).items()}
               for name, s in services.items()}
    assert depends["trainer"] == {"mlflow": "service_healthy"}
    assert depends["tfserving"] == {"trainer": "service_completed_successfully"}
    assert depends["webui"] == {"tfserving": "service_healthy"}
    assert services["trainer"]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] in ("always", "unless-stopped", "on-failure")


def test_every_service_runs_as_a_non_root_user(services):
    for name, service in services.items():
        if name == "serving":  # only builds an image
            continue
        uid = str(service.get("user", "")).split(":")[0]
        assert uid and uid not in ("0", "root"), f"{name} runs as {uid or 'the image default'}"


def test_long_running_services_have_healthchecks_on_their_own_ports(services):
    ports = {"mlflow": contract.MLFLOW_PORT, "tfserving": contract.REST_PORT,
             "webui": contract.WEBUI_PORT}
    for name, port in ports.items():
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        assert str(port) in " ".join(test), f"{name}'s healthcheck probes another port"
        assert _container_port(services[name], port)


def test_published_ports_are_the_contract_ports(services):
    assert _container_port(services["mlflow"], contract.MLFLOW_PORT)
    assert _container_port(services["tfserving"], contract.REST_PORT)
    assert _container_port(services["tfserving"], contract.GRPC_PORT)
    assert _container_port(services["webui"], contract.WEBUI_PORT)


def _published(services: dict) -> list[str]:
    return [str(port) for service in services.values() for port in service.get("ports", [])]


@pytest.mark.parametrize("env,host", [({}, "127.0.0.1"), ({"BIND_ADDRESS": "0.0.0.0"}, "0.0.0.0")])
def test_ports_bind_loopback_unless_opened_on_purpose(env, host):
    published = _published(composefile.load(env)["services"])
    assert len(published) >= 4  # and any service added later follows BIND_ADDRESS too
    assert all(port.startswith(f"{host}:") for port in published), published


def test_docker_compose_renders_the_ports_on_loopback():
    program = tool("docker-compose", VENV_BIN)
    rendered = subprocess.run([program, "-f", str(COMPOSE_FILE), "config"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "BIND_ADDRESS": ""})
    assert rendered.returncode == 0, rendered.stderr
    published = _published(yaml.safe_load(rendered.stdout)["services"])
    assert len(published) >= 4 and all("127.0.0.1" in port for port in published), published


def test_env_example_lists_every_variable_and_gives_the_defaults():
    used = composefile.variables(COMPOSE_FILE.read_text())
    listed = composefile.read_env_file()
    assert used <= set(listed), f"missing from .env.example: {sorted(used - set(listed))}"
    assert set(listed) - used <= {"COMPOSE_PROJECT_NAME"}, "listed but unused"
    assert composefile.load(listed) == composefile.load({}), ".env.example differs from defaults"


# --- mlflow ------------------------------------------------------------------------------------

AUTH_FILE = ROOT / "docker-compose.auth.yml"
AUTH_ENV = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "twelve-chars-or-more",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}


def test_auth_override_is_the_mlflow_command_plus_basic_auth(services):
    auth = composefile.load(AUTH_ENV, AUTH_FILE)["services"]
    assert composefile.command(auth["mlflow"]) == (composefile.command(services["mlflow"])
                                                   + ["--app-name=basic-auth"])
    from mlflow.cli import server
    app_name = next(p for p in server.params if "--app-name" in p.opts)
    assert "basic-auth" in app_name.type.choices
    admin = composefile.environment(auth["mlflow"])
    assert (admin["MLFLOW_AUTH_ADMIN_USERNAME"], admin["MLFLOW_AUTH_ADMIN_PASSWORD"]) == (
        AUTH_ENV["MLFLOW_TRACKING_USERNAME"], AUTH_ENV["MLFLOW_TRACKING_PASSWORD"])
    from webui import ENV_VARS
    for client in ("trainer", "webui"):
        login = composefile.environment(auth[client])
        assert set(login) == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(ENV_VARS)


def test_auth_override_refuses_to_start_without_credentials():
    program = tool("docker-compose", VENV_BIN)
    files = ["-f", str(COMPOSE_FILE), "-f", str(AUTH_FILE)]
    env = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
    refused = subprocess.run([program, *files, "config", "-q"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=env)
    assert refused.returncode != 0 and "MLFLOW_TRACKING_" in refused.stderr
    accepted = subprocess.run([program, *files, "config", "-q"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**env, **AUTH_ENV})
    assert accepted.returncode == 0, accepted.stderr
    listed = " ".join(ENV_EXAMPLE.read_text().split())
    for name in AUTH_ENV:
        assert f"# {name}=" in listed  # documented, and commented out: no secret committed


def test_mlflow_command_uses_flags_mlflow_server_has(services):
    from mlflow.cli import server

    known = {opt for param in server.params for opt in param.opts}
    args = composefile.command(services["mlflow"])
    assert args[0] == "server"
    flags = dict(arg.split("=", 1) for arg in args[1:])
    assert set(flags) <= known, f"unknown: {set(flags) - known}"
    assert flags["--port"] == str(contract.MLFLOW_PORT) and flags["--host"] == "0.0.0.0"
    allowed = flags["--allowed-hosts"].split(",")
    assert {"mlflow", f"mlflow:{contract.MLFLOW_PORT}", "localhost"} & set(allowed)
    assert "mlflow:*" in allowed and "localhost:*" in allowed


def test_mlflow_keeps_database_and_artifacts_in_mlruns(services):
    mlflow = services["mlflow"]
    flags = dict(arg.split("=", 1) for arg in composefile.command(mlflow)[1:])
    database = flags["--backend-store-uri"].removeprefix("sqlite:///")
    assert flags["--backend-store-uri"].startswith("sqlite:////")
    assert composefile.host_path(mlflow, database) == ROOT / "mlruns" / "mlflow.db"
    artifacts = composefile.host_path(mlflow, flags["--artifacts-destination"])
    assert artifacts is not None and artifacts.parent == ROOT / "mlruns"
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])


# --- trainer -----------------------------------------------------------------------------------


def _trainer_parse(args: list[str]):
    from training.cli import build_parser

    return build_parser().parse_args(args)


def test_trainer_command_is_bootstrap_and_parses(services):
    args = _trainer_parse(composefile.command(services["trainer"]))
    assert args.command == "bootstrap"
    image_cmd = dockerfiles.last(dockerfiles.final_stage(ROOT / "docker/trainer.Dockerfile"),
                                 "CMD")
    assert _trainer_parse(image_cmd.words()).command == "bootstrap"


def test_train_args_example_parses_as_bootstrap_flags():
    example = next(line for line in ENV_EXAMPLE.read_text().splitlines()
                   if line.lstrip("# ").startswith("TRAIN_ARGS=--"))
    flags = shlex.split(example.lstrip("# ").partition("=")[2])
    env = {"TRAIN_ARGS": " ".join(flags)}
    args = _trainer_parse(composefile.command(composefile.load(env)["services"]["trainer"]))
    assert args.command == "bootstrap" and args.train_limit


@pytest.mark.parametrize("documented", sorted({
    m.group(1) for m in re.finditer(r"docker compose run --rm trainer (.+)",
                                    COMPOSE_FILE.read_text())
}))
def test_documented_trainer_commands_parse(documented):
    _trainer_parse(shlex.split(documented.replace(" N", " 2")))


def test_trainer_environment_is_what_the_trainer_reads(services):
    from training.config import ENV_VARS

    environment = composefile.environment(services["trainer"])
    reads = set(ENV_VARS.values()) | _names_read("training")
    assert set(environment) <= reads, f"not read by training: {set(environment) - reads}"
    assert _url(environment["MLFLOW_TRACKING_URI"]) == ("mlflow", contract.MLFLOW_PORT)
    assert environment["MODEL_NAME"] == contract.MODEL_NAME


def test_train_profile_is_one_the_trainer_knows(services, monkeypatch):
    profile = composefile.environment(services["trainer"])["TRAIN_PROFILE"]
    monkeypatch.setenv("TRAIN_PROFILE", profile)  # the trainer's default profile comes from it
    assert _trainer_parse(["bootstrap"]).profile == profile == "quick"


def test_trainer_writes_where_tfserving_reads(services):
    trainer, tfserving = services["trainer"], services["tfserving"]
    environment = composefile.environment(trainer)
    assert composefile.host_path(trainer, environment["MODELS_DIR"]) == ROOT / "models"
    config_on_host = composefile.host_path(trainer, environment["MODELS_CONFIG"])
    assert config_on_host == ROOT / contract.DEFAULT_MODELS_CONFIG
    flags = dict(a.split("=", 1) for a in composefile.command(tfserving))
    assert composefile.host_path(tfserving, flags["--model_config_file"]) == config_on_host
    assert all(v.endswith(":ro") for v in tfserving["volumes"]), "tfserving only reads"


def test_serving_base_path_matches_models_config(services):
    from training.models_config import CONTAINER_BASE_PATH

    base_path = composefile.environment(services["trainer"])["SERVING_BASE_PATH"]
    tfserving = services["tfserving"]
    assert composefile.host_path(tfserving, base_path) == ROOT / "models" / contract.MODEL_NAME
    assert base_path == CONTAINER_BASE_PATH


def test_the_trainer_writes_nothing_git_tracks(services):
    """A promotion rewrites models.config: in a user's checkout that must not show as a change."""
    trainer = services["trainer"]
    environment = composefile.environment(trainer)
    written = [composefile.host_path(trainer, environment["MODELS_CONFIG"]),
               composefile.host_path(trainer, environment["MODELS_DIR"]) / "mnist" / "1"]
    for path in written:
        relative = str(path.relative_to(ROOT))
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", relative], cwd=ROOT)
        assert ignored.returncode == 0, f"the trainer writes {relative}, which git does not ignore"


def test_mnist_reaches_the_trainer_through_its_cache(services, compose, monkeypatch):
    from training import data

    trainer = services["trainer"]
    final = dockerfiles.final_stage(ROOT / "docker/trainer.Dockerfile")
    cache_home = dockerfiles.env(final)["XDG_CACHE_HOME"]
    monkeypatch.setenv("XDG_CACHE_HOME", cache_home)
    monkeypatch.delenv("MNIST_DIR", raising=False)
    seen = []

    def download(folder):
        seen.append(str(folder))
        raise data.MnistError("stop here")

    monkeypatch.setattr(data, "_download", download)
    with pytest.raises(data.MnistError):
        data.locate()
    mounts = composefile.mounts(trainer)
    assert mounts.get(seen[0]) == "mnist-cache" and "mnist-cache" in compose["volumes"]
    assert "MNIST_DIR" not in composefile.environment(trainer), "a host path means nothing inside"
    with_dir = composefile.load({"MNIST_DIR": "../shared/data/mnist"})["services"]["trainer"]
    assert composefile.mounts(with_dir)[seen[0]] == "../shared/data/mnist"


# --- tfserving ---------------------------------------------------------------------------------


def test_tfserving_flags_are_tensorflow_model_server_flags(services):
    from serving.config import IGNORED_FLAGS, build_parser, parse_args

    args = OFFICIAL_ENTRYPOINT_FLAGS + composefile.command(services["tfserving"])
    settings = parse_args(args)  # our server mirrors every official flag
    known = {a.dest for a in build_parser()._actions} | set(IGNORED_FLAGS)
    assert {a.split("=")[0].lstrip("-") for a in args} <= known
    assert settings.model_config_file_poll_wait_seconds > 0, "promote needs a re-read"
    assert settings.allow_version_labels_for_unavailable_models


def test_tfserving_command_is_serving_tfserving_flags(services):
    flags_file = ROOT / "serving" / "tfserving.flags"
    written = [line.strip() for line in flags_file.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    ours = OFFICIAL_ENTRYPOINT_FLAGS + composefile.command(services["tfserving"])
    assert sorted(ours) == sorted(written)  # flags, so their order does not matter


def test_tfserving_config_files_exist_through_the_mounts(services):
    tfserving = services["tfserving"]
    flags = dict(a.split("=", 1) for a in composefile.command(tfserving))
    for flag in ("--batching_parameters_file", "--monitoring_config_file"):
        path = composefile.host_path(tfserving, flags[flag])
        assert path is not None and path.is_file(), f"{flag}={flags[flag]} is not in the repo"


def test_tfserving_healthcheck_needs_no_curl_and_asks_for_the_stable_label(services):
    test = " ".join(services["tfserving"]["healthcheck"]["test"])
    assert not re.search(r"\b(curl|wget|python)\b", test)
    assert "/dev/tcp/127.0.0.1/8501" in test
    assert f"/v1/models/{contract.MODEL_NAME}/labels/{contract.STABLE_LABEL}" in test


def test_tfserving_environment_is_what_the_entrypoints_read(services):
    environment = composefile.environment(services["tfserving"])
    entrypoint = (ROOT / "docker/serving-entrypoint.sh").read_text()
    assert set(environment) <= {"MODEL_NAME", "MODEL_BASE_PATH"}
    for name in environment:
        assert f"${{{name}}}" in entrypoint


def test_our_serving_image_keeps_the_official_contract():
    from serving.config import parse_args

    final = dockerfiles.final_stage(ROOT / "docker/serving.Dockerfile")
    env = dockerfiles.env(final)
    assert (env["MODEL_NAME"], env["MODEL_BASE_PATH"]) == ("model", "/models")
    exposed = {p for i in final if i.keyword == "EXPOSE" for p in i.value.split()}
    assert {str(contract.REST_PORT), str(contract.GRPC_PORT)} <= exposed
    script = (ROOT / "docker/serving-entrypoint.sh").read_text()
    command = re.search(r"exec (python -m serving .*?)\"\$@\"", script, re.S).group(1)
    words = shlex.split(composefile.interpolate(command.replace("\\\n", " "), env))
    assert words[:3] == ["python", "-m", "serving"]
    settings = parse_args(words[3:])
    assert settings.rest_api_port == contract.REST_PORT
    assert settings.model_base_path == "/models/model"
    assert os.access(ROOT / "docker/serving-entrypoint.sh", os.X_OK)


# --- webui -------------------------------------------------------------------------------------


def test_webui_command_and_environment_are_what_the_app_reads(services):
    from webui import ENV_VARS, load_config
    from webui.__main__ import parse_args

    webui = services["webui"]
    args = parse_args(composefile.command(webui))
    assert (args.host, args.port) == ("0.0.0.0", contract.WEBUI_PORT)
    environment = composefile.environment(webui)
    assert set(environment) <= set(ENV_VARS), f"not read: {set(environment) - set(ENV_VARS)}"
    config = load_config(environ=environment)
    assert _url(config["TF_SERVING_URL"]) == ("tfserving", contract.REST_PORT)
    assert _url(config["MLFLOW_TRACKING_URI"]) == ("mlflow", contract.MLFLOW_PORT)
    assert _url(config["MLFLOW_UI_URL"]) == ("localhost", contract.MLFLOW_PORT)
    assert config["MODEL_LABEL"] == contract.STABLE_LABEL
