"""Facts written once: the loopback address lives in contract.py and everything imports it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def test_loopback_is_defined_only_in_contract():
    defined = [str(path.relative_to(ROOT)) for path in python_files(".")
               if ".venv" not in path.parts and re.search(r"^LOOPBACK\s*=", path.read_text(),
                                                          re.M)]
    assert defined == ["contract.py"]


def test_the_services_make_up_and_the_benches_never_type_the_address():
    """No string or URL in the code spells it out (prose in a docstring may)."""
    typed = [f"{path.relative_to(ROOT)}:{number}"
             for path in python_files("devstack", "bench", "webui", "serving", "training",
                                      "corrections")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"[\"'/]127\.0\.0\.1", line)]
    assert typed == []
