"""docker/writable-entrypoint.sh, run here as the container runs it: as a uid that does not own
the mounted folder it stops at once and names APP_UID/APP_GID; as the owner it runs the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.compose.composefile import ROOT

pytestmark = pytest.mark.compose

SCRIPT = ROOT / "docker" / "writable-entrypoint.sh"
OTHER_UID = 1000 if os.geteuid() == 0 else os.geteuid()  # root bypasses permissions: drop it


def run_as_other(folder: Path, *command: str) -> subprocess.CompletedProcess:
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv (util-linux) is needed to drop root for this test")
        prefix = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
    env = {"PATH": os.environ["PATH"], "WRITABLE_DIRS": f"/nonexistent {folder}"}
    return subprocess.run([*prefix, "sh", str(SCRIPT), *command], capture_output=True,
                          text=True, timeout=30, env=env)


@pytest.fixture
def folder():
    """A folder the other uid can reach (pytest's tmp_path is private to us)."""
    parent = Path(tempfile.mkdtemp(prefix="writable-"))
    parent.chmod(0o755)
    mounted = parent / "mlruns"
    mounted.mkdir(mode=0o755)
    yield mounted
    shutil.rmtree(parent)


def test_a_folder_the_container_uid_cannot_write_stops_it_with_what_to_set(folder):
    folder.chmod(0o555)  # as a checkout owned by someone else looks to the container's uid
    try:
        result = run_as_other(folder, "echo", "started")
    finally:
        folder.chmod(0o755)
    assert result.returncode == 78, result
    assert "started" not in result.stdout
    owner = f"{folder.stat().st_uid}:{folder.stat().st_gid}"
    assert f"{folder} (a folder of your checkout, mounted here) belongs to uid:gid {owner}" \
        in result.stderr
    assert f"APP_UID={folder.stat().st_uid} APP_GID={folder.stat().st_gid}" in result.stderr


def test_the_owner_runs_the_command(folder):
    if os.geteuid() == 0:
        os.chown(folder, OTHER_UID, OTHER_UID)
    result = run_as_other(folder, "echo", "started")
    assert (result.returncode, result.stdout) == (0, "started\n"), result
