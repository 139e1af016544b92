"""Child processes that can always be stopped whole, and the signals that ask us to stop them.

Each role runs in a process group of its own, so the terminal's Ctrl-C reaches only us (we stop
the roles in order) and stopping a role reaches every process it started (MLflow's uvicorn
worker, for one). Every role also carries STACK_MARK=<checkout> in its environment, inherited
by all it starts: the watchdog and `make down` find the stack's processes by it, whatever
became of devstack.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack.roles import Role

STREAM_PREFIX = b"    "  # indents a streamed role's output under its progress line
STACK_MARK = "DIGITOPS_DEVSTACK"  # in every role's environment: the checkout it belongs to
END_TIMEOUT = 10.0  # seconds end_processes gives SIGTERM before SIGKILL


def stack_processes(root: Path) -> list[int]:
    """Live processes (ours to see) started by a `make up` of the checkout at `root`."""
    needle = f"{STACK_MARK}={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()  # empty for a zombie
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def end_processes(pids: list[int], timeout: float = END_TIMEOUT) -> None:
    """SIGTERM each of `pids`; SIGKILL those still alive after `timeout` seconds."""
    def send(pid: int, signum: int) -> bool:
        try:
            os.kill(pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    alive = [pid for pid in pids if send(pid, signal.SIGTERM)]
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        send(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Child:
    """One role's process: started in its own group, output to a log file (and maybe shown)."""

    def __init__(self, role: Role, root: Path, log: Path):
        self.role, self.root, self.log = role, root, log
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, append: bool = False) -> None:
        """Start the role; `append` keeps the log of an earlier run (a restart)."""
        self._log_file = open(self.root / self.log, "ab" if append else "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.role.env,
               STACK_MARK: str(self.root)}
        out = subprocess.PIPE if self.role.stream else self._log_file
        self.proc = subprocess.Popen(self.role.args, cwd=self.root, env=env,
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if self.role.stream:
            self._pump = threading.Thread(target=self._show, name=f"{self.role.name}-output",
                                          daemon=True)
            self._pump.start()

    def _show(self) -> None:
        """Copy the output to the log and, indented, to our stdout; \\r progress bars too."""
        fd, out, line_start = self.proc.stdout.fileno(), sys.stdout.buffer, True
        while chunk := os.read(fd, 65536):
            self._log_file.write(chunk)
            self._log_file.flush()
            shown = bytearray()
            for part in re.split(rb"([\r\n])", chunk):
                if part in (b"\r", b"\n"):
                    shown += part
                    line_start = True
                elif part:
                    shown += (STREAM_PREFIX if line_start else b"") + part
                    line_start = False
            out.write(bytes(shown))
            out.flush()
        if not line_start:
            out.write(b"\n")
            out.flush()

    def exit_code(self) -> int | None:
        """None while it runs; its exit status once it has ended."""
        code = self.proc.poll()
        if code is not None and self._pump is not None:
            self._pump.join()  # every line shown before anyone reports the exit
        return code

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float, hurry=lambda: False) -> None:
        """SIGTERM the group; SIGKILL what is left after `timeout` s, or when `hurry()`."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not hurry():
            self.proc.poll()  # reap the leader, so only live members keep the group
            if not self._group_alive():
                break
            time.sleep(0.1)
        else:
            self._signal_group(signal.SIGKILL)
        self.proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self._log_file.close()

    def tail(self, lines: int = 20) -> str:
        """The last lines of the log, for a failure message."""
        try:
            text = (self.root / self.log).read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""
        rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
        return "\n".join(f"    {row}" for row in rows[-lines:])


class StopSignals:
    """Turn SIGINT, SIGTERM and SIGHUP into a flag; a second one means hurry."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.count = 0

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0

    def hurry(self) -> bool:
        return self.count > 1
