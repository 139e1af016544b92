"""One answer to "is this CI?": what is missing there fails the run; elsewhere it skips."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True under .ci/run (CI=true), as for most CI services; CI=false or 0 means no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def fail_in_ci_else_skip(reason: str):
    """A test's prerequisite is missing: CI must never skip, a developer's machine may."""
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)
