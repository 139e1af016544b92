"""The README's curl commands work as printed, against a served model."""

import json
import subprocess
from pathlib import Path

import pytest

from contract import DEFAULT_TF_SERVING_URL

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CURLS = [line for line in (ROOT / "README.md").read_text().splitlines()
         if line.startswith("curl ") and DEFAULT_TF_SERVING_URL in line]


def test_the_readme_has_curl_examples():
    assert len(CURLS) >= 4
    assert any("predict_image" in line for line in CURLS)


@pytest.mark.parametrize("command", CURLS, ids=range(len(CURLS)))
def test_curl_example(command, serving_url):
    command = command.split("  #")[0].replace(DEFAULT_TF_SERVING_URL, serving_url)
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert "error" not in body
    if ":predict" in command:
        assert body["predictions"][0]["digit"] == 7  # docs/examples/digit-7.*
