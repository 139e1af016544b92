"""Read a Dockerfile's instructions, continuation lines joined, comments dropped."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.compose.composefile import ROOT

DOCKER_DIR = ROOT / "docker"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    value: str

    def words(self) -> list[str]:
        """Arguments of an exec-form (JSON) or shell-form instruction."""
        if self.value.startswith("["):
            return json.loads(self.value)
        return shlex.split(self.value)


def all_dockerfiles() -> list[Path]:
    return sorted(DOCKER_DIR.glob("*.Dockerfile"))


def instructions(path: Path) -> list[Instruction]:
    result, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, value = (pending + stripped).partition(" ")
        result.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return result


def stages(path: Path) -> list[list[Instruction]]:
    """Instructions grouped by build stage; the last group is the final image."""
    groups: list[list[Instruction]] = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            groups.append([])
        groups[-1].append(ins)
    return groups


def final_stage(path: Path) -> list[Instruction]:
    return stages(path)[-1]


def last(stage: list[Instruction], keyword: str) -> Instruction | None:
    found = [ins for ins in stage if ins.keyword == keyword]
    return found[-1] if found else None


def env(stage: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs set in a stage (later ones win)."""
    values = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.value):
                key, _, value = word.partition("=")
                values[key] = value
    return values


def copied_sources(stage: list[Instruction]) -> list[str]:
    """Sources of the COPY instructions that copy from the build context."""
    sources = []
    for ins in stage:
        if ins.keyword == "COPY":
            words = [w for w in shlex.split(ins.value) if not w.startswith("--")]
            if "--from=" not in ins.value:
                sources += words[:-1]
    return sources
