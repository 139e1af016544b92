"""Read docker-compose.yml as compose does: YAML, then `${VAR:-default}` filled from a mapping.

Shared by the paper checks in tests/compose and the container test in tests/containers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def variables(text: str) -> set[str]:
    """Every variable name the text refers to."""
    return {m["plain"] or m["braced"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Fill in variables the way docker-compose 1.29 does."""

    def substitute(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["plain"] or m["braced"]
        value, op = env.get(name), m["op"] or ""
        if op.startswith(":") and not value or op in ("-", "?") and value is None:
            if op.endswith("?"):
                raise ValueError(f"required variable {name} is missing: {m['arg']}")
            return m["arg"] if op.endswith("-") else ""
        return value or ""

    return _VARIABLE.sub(substitute, text)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines of an .env file (comments and blank lines skipped), unquoted."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def load(env: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict:
    """The compose file as a dict, variables filled from env (default: none set, so defaults)."""
    return yaml.safe_load(interpolate(path.read_text(), env or {}))


def command(service: dict) -> list[str]:
    """A service's command as an argument list (compose splits a string like a shell)."""
    value = service.get("command", [])
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list form."""
    value = service.get("environment") or {}
    if isinstance(value, list):
        value = dict(item.partition("=")[::2] for item in value)
    return {k: "" if v is None else str(v) for k, v in value.items()}


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (host path or volume name) of a service's volumes."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


def container_path(service: dict, host_path: str) -> str | None:
    """Where a service sees a repository path such as ./models, if it mounts it."""
    host = "./" + host_path.strip("./")
    for target, source in mounts(service).items():
        if source.rstrip("/") == host:
            return target
    return None


def host_path(service: dict, path_in_container: str) -> Path | None:
    """The repository file behind a container path, through the service's bind mounts."""
    for target, source in mounts(service).items():
        if source.startswith((".", "/")) and (
            path_in_container == target or path_in_container.startswith(target.rstrip("/") + "/")
        ):
            return (ROOT / source / path_in_container[len(target):].lstrip("/")).resolve()
    return None
