"""A Docker engine and a throw-away copy of the project for the container test.

The engine is the one at DOCKER_HOST when it answers; otherwise ../shared/tools/docker-engine.sh
starts one (and stops it afterwards). The compose file is rewritten only in what such a machine
lacks (see `host_network`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.compose.composefile import ROOT

TOOLS = ROOT.parent / "shared" / "tools"
ENGINE_SCRIPT = TOOLS / "docker-engine.sh"
BASE_IMAGE_SCRIPT = TOOLS / "base-image.sh"
BASE_IMAGE = "python:3.11-slim-bookworm"
OFFICIAL_SERVING_IMAGE = "tensorflow/serving:2.20.0"
REPORT: list[str] = []  # image sizes and timings, printed at the end of the session


class NoEngine(RuntimeError):
    """No Docker engine answers and none can be started here."""


def docker_env() -> dict[str, str]:
    """The environment for docker and docker-compose: Debian's binaries (/usr/bin) first.

    /usr/local/bin/docker on the development machines is a newer client without compose.
    BuildKit is on for the cache mounts, and compose builds through the docker CLI.
    """
    env = dict(os.environ)
    env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    env.update(DOCKER_BUILDKIT="1", COMPOSE_DOCKER_CLI_BUILD="1", BUILDKIT_PROGRESS="plain")
    return env


def answers(env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["docker", "info"], env=env, capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _script_engine_host() -> str:
    """The DOCKER_HOST that docker-engine.sh prints (its socket lives in DOCKER_ENGINE_DIR)."""
    return f"unix://{os.environ.get('DOCKER_ENGINE_DIR', '/tmp/docker-engine')}/docker.sock"


def start_engine(env: dict[str, str]) -> bool:
    """Make sure an engine answers; return True only when this call started it.

    An engine the shared script started earlier (someone else's, perhaps) is used and left
    running, like one at DOCKER_HOST.
    """
    if answers(env):
        return False
    if answers({**env, "DOCKER_HOST": _script_engine_host()}):
        env["DOCKER_HOST"] = _script_engine_host()
        return False
    if not ENGINE_SCRIPT.is_file() or os.geteuid() != 0:
        raise NoEngine(f"no Docker engine answers at {env.get('DOCKER_HOST', 'the default')} "
                       f"and {ENGINE_SCRIPT} needs root to start one")
    out = subprocess.run([str(ENGINE_SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=900)
    host = re.search(r"DOCKER_HOST=(\S+)", out.stdout)
    if out.returncode != 0 or not host:
        raise NoEngine(f"{ENGINE_SCRIPT} failed: {out.stderr[-2000:]}")
    env["DOCKER_HOST"] = host.group(1)
    if not answers(env):
        raise NoEngine(f"the engine started by {ENGINE_SCRIPT} does not answer")
    return True


def stop_engine(env: dict[str, str]) -> None:
    subprocess.run([str(ENGINE_SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


def have_image(env: dict[str, str], image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], env=env,
                          capture_output=True).returncode == 0


def pull(env: dict[str, str], image: str) -> bool:
    """Pull an image if it is not here; False when no registry has it for us."""
    if have_image(env, image):
        return True
    try:
        return subprocess.run(["docker", "pull", "-q", image], env=env, capture_output=True,
                              timeout=600).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_base_image(env: dict[str, str]) -> None:
    """python:3.11-slim-bookworm from the registry, else the local stand-in from Debian."""
    if pull(env, BASE_IMAGE):
        return
    out = subprocess.run([str(BASE_IMAGE_SCRIPT), BASE_IMAGE], env=env, capture_output=True,
                         text=True, timeout=1800)
    if out.returncode != 0:
        raise NoEngine(f"cannot pull {BASE_IMAGE} and {BASE_IMAGE_SCRIPT} failed: "
                       f"{out.stderr[-2000:]}")


def copy_project(target: Path) -> Path:
    """Copy the working tree (tracked and untracked-but-not-ignored files) into target."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for folder in ("mlruns", "models", "serving"):
        (target / folder).mkdir(exist_ok=True)
    return target


def host_network(compose: dict) -> dict:
    """Rewrite a compose file for an engine without a bridge network, and nothing else.

    Every service joins the host's network (so `ports` must go: compose 1.29 refuses both,
    and has no `!reset`), the service names resolve to 127.0.0.1 through extra_hosts, and
    builds use the host network too. Commands, environment, volumes, healthchecks, users and
    start order stay as written.
    """
    names = sorted(compose["services"])
    for service in compose["services"].values():
        service.pop("ports", None)
        service["network_mode"] = "host"
        service["extra_hosts"] = [f"{name}:127.0.0.1" for name in names]
        if "build" in service:
            service["build"] = {**service["build"], "network": "host"}
    return compose


def write_host_network_compose(source: Path, target: Path) -> Path:
    """The rewritten compose file, variables left for compose to fill from .env."""
    compose = host_network(yaml.safe_load(source.read_text()))

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    target.write_text("# Generated by tests/containers from docker-compose.yml: host network\n"
                      + yaml.dump(compose, Dumper=NoAliases, sort_keys=False))
    return target
