"""Find a command-line tool a test runs (kubectl, promtool, checkov, docker-compose...)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.ci import fail_in_ci_else_skip


def tool(name: str, *extra_dirs: Path) -> str:
    """The tool from extra_dirs or PATH; fail in CI (.ci/run installs it), else skip."""
    found = shutil.which(name, path=os.pathsep.join(
        [*map(str, extra_dirs), os.environ.get("PATH", "")]))
    if found:
        return found
    fail_in_ci_else_skip(f"{name} is not installed (CI installs it: see .ci/run and the Makefile)")
