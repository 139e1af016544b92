"""A real PostgreSQL server for tests: initdb in a temporary folder, on a free loopback port.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it). PostgreSQL refuses
to run as root, so as root the server runs as the package's `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port, process

USER = DATABASE = "digitops"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None where none is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throwaway PostgreSQL until the block ends; yield its SQLAlchemy URL (psycopg 3)."""
    pg = bin_dir()
    if pg is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="digitops-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        subprocess.run(_as_owner([str(pg / "initdb"), "-D", str(data), "-U", USER,
                                  "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        port = free_port()
        server = _as_owner([str(pg / "postgres"), "-D", str(data), "-p", str(port),
                            "-c", "listen_addresses=127.0.0.1",
                            "-c", f"unix_socket_directories={root}", "-c", "fsync=off"])

        def ready() -> bool:
            probe = subprocess.run([str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                   capture_output=True)
            return probe.returncode == 0

        with process(server, ready, f"PostgreSQL on {port}", timeout=60, log=root / "log"):
            subprocess.run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER,
                            DATABASE], check=True, capture_output=True)
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
