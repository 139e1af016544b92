"""Start the roles in order, wait on each one's readiness, watch them, stop them all on exit.

A role that exits once the stack is ready is restarted after a pause that doubles each time,
up to MAX_RESTARTS; then the stack stops with the role's last log lines. A watchdog process
(devstack/watchdog.py) ends every role should devstack itself die without stopping them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from contract import (
    DEFAULT_FEEDBACK_DB_URL,
    LOOPBACK,
    STABLE_LABEL,
    mlflow_model_url,
    mlflow_runs_url,
)
from devstack import ports
from devstack.config import LOG_DIR, PID_FILE, StackConfig
from devstack.fetch import fetch_json
from devstack.processes import Child, StopSignals, end_processes, stack_processes
from devstack.roles import PYTHON, all_roles

STOP_TIMEOUT = 15.0  # seconds each role gets to exit after SIGTERM, before SIGKILL
INTERRUPTED = 130  # exit status when Ctrl-C comes before the stack is ready
MAX_RESTARTS = 5  # per role and run of the stack
FIRST_BACKOFF = 1.0  # seconds before the first restart; doubled for each next one
WATCHDOG_LOG = LOG_DIR / "watchdog.log"


class RoleFailed(Exception):
    """A role exited, failed or never became ready; the message says which and why."""


def up(config: StackConfig) -> int:
    """Run the stack until Ctrl-C or SIGTERM (exit 0) or until a role fails (exit 1)."""
    running = running_pid(config.root)
    if running:
        print(f"A stack started by `make up` is already running here (pid {running}); "
              "`make down` stops it.", file=sys.stderr)
        return 1
    taken = ports.problems(config)
    if taken:
        for message in taken:
            print(message, file=sys.stderr)
        print("Nothing was started.", file=sys.stderr)
        return 1

    (config.root / LOG_DIR).mkdir(parents=True, exist_ok=True)
    (config.root / PID_FILE).write_text(f"{os.getpid()}\n")
    signals = StopSignals()
    signals.install()
    watchdog, lifeline = _start_watchdog(config.root)
    children: list[Child] = []
    try:
        return _run(config, signals, children)
    finally:
        try:
            _stop_all(children, signals)
        except BrokenPipeError:  # Ctrl-C through `| tee` ended the reader first
            _stop_all(children, signals, quiet=True)
        (config.root / PID_FILE).unlink(missing_ok=True)
        os.close(lifeline)
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(STOP_TIMEOUT)  # it finds nothing left; then truly nothing runs


def _start_watchdog(root: Path) -> tuple[subprocess.Popen, int]:
    """Start devstack.watchdog on a pipe only we hold; return it and the end that keeps it
    waiting.

    os.pipe's ends are not inherited, so the roles never hold it open: when we exit, however
    we exit, the kernel closes it, and the watchdog ends what the roles left behind.
    """
    read_end, write_end = os.pipe()
    with open(root / WATCHDOG_LOG, "ab") as log:
        watchdog = subprocess.Popen([PYTHON, "-m", "devstack.watchdog", str(root)], cwd=root,
                                    stdin=read_end, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    os.close(read_end)
    return watchdog, write_end


def _run(config: StackConfig, signals: StopSignals, children: list[Child]) -> int:
    roles = all_roles(config)
    print(f"Starting DigitOps without Docker; each role logs to {LOG_DIR}/<role>.log",
          flush=True)
    try:
        for number, role in enumerate(roles, 1):
            child = Child(role, config.root, LOG_DIR / f"{role.name}.log")
            children.append(child)
            if not _start(child, f"[{number}/{len(roles)}]", children, signals):
                print("\nInterrupted before the stack was ready.", flush=True)
                return INTERRUPTED
        _print_ready(config)
        _supervise(children, signals)
        return 0
    except RoleFailed as err:
        print(f"\n{err}", file=sys.stderr, flush=True)
        return 1


def _start(child: Child, step: str, children: list[Child], signals: StopSignals) -> bool:
    """Start one role and wait until it is ready (or, for a job, done). False: interrupted."""
    role = child.role
    print(f"{step} {role.name:<8} {role.note} (log {child.log})", flush=True)
    started = time.monotonic()
    try:
        child.start()
    except OSError as err:  # e.g. a tensorflow_model_server on PATH that cannot run
        raise RoleFailed(f"{role.name} could not start: {err}; stopping the stack.") from None
    progress = _Progress(step, role.name, quiet=role.stream)
    while not signals.requested:
        _check_running([c for c in children if c is not child])
        code = child.exit_code()
        if role.probe is None and code is not None:  # a one-shot job
            if code != 0:
                raise RoleFailed(f"{role.name} failed with exit status {code}; stopping the "
                                 f"stack. Its output is above and in {child.log}.")
            progress.done(f"done in {time.monotonic() - started:.1f}s")
            return True
        if code is not None:
            raise RoleFailed(f"{role.name} {_ended(code)} before it was ready; "
                             f"stopping the stack. The end of {child.log}:\n{child.tail()}")
        if role.probe is not None:
            note = role.probe()
            if note is not None:
                note = f": {note}" if note else ""
                progress.done(f"ready in {time.monotonic() - started:.1f}s "
                              f"(pid {child.pid}){note}")
                return True
            if time.monotonic() - started > role.timeout:
                raise RoleFailed(f"{role.name} was not ready after {role.timeout:.0f}s; "
                                 f"stopping the stack. The end of {child.log}:\n"
                                 f"{child.tail()}")
        progress.tick(time.monotonic() - started)
        time.sleep(0.25)
    return False


def _check_running(children: list[Child]) -> None:
    """Raise RoleFailed if a long-running role has exited."""
    for child in children:
        if child.role.probe is None:
            continue
        code = child.exit_code()
        if code is not None:
            raise RoleFailed(f"{child.role.name} {_ended(code)} unexpectedly; "
                             f"stopping the stack. The end of {child.log}:\n{child.tail()}")


def _supervise(children: list[Child], signals: StopSignals) -> None:
    """Until a stop signal, restart a long-running role that exits, with backoff and a limit."""
    restarts: Counter[str] = Counter()
    while not signals.requested:
        for child in children:
            code = child.exit_code() if child.role.probe is not None else None
            if code is None:
                continue
            name = child.role.name
            restarts[name] += 1
            if restarts[name] > MAX_RESTARTS:
                raise RoleFailed(f"{name} {_ended(code)} again after {MAX_RESTARTS} restarts; "
                                 f"giving up and stopping the stack. The end of {child.log}:\n"
                                 f"{child.tail()}")
            delay = FIRST_BACKOFF * 2 ** (restarts[name] - 1)
            print(f"{name} {_ended(code)}; restarting it in {delay:g}s (restart "
                  f"{restarts[name]} of {MAX_RESTARTS}). The end of {child.log}:\n"
                  f"{child.tail(5)}", flush=True)
            child.stop(STOP_TIMEOUT, hurry=signals.hurry)  # what its group left behind
            if not _pause(delay, signals) or not _restart(child, signals):
                return
        time.sleep(0.5)


def _pause(seconds: float, signals: StopSignals) -> bool:
    """Sleep `seconds`; False as soon as a stop signal comes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if signals.requested:
            return False
        time.sleep(0.1)
    return True


def _restart(child: Child, signals: StopSignals) -> bool:
    """Start a role again and wait for its probe; False: interrupted. Exits are left to
    _supervise, which counts them; a role not ready in time is stopped, so it counts too."""
    started = time.monotonic()
    child.start(append=True)
    while not signals.requested:
        if child.exit_code() is not None:
            return True
        note = child.role.probe()
        if note is not None:
            print(f"{child.role.name} is back: ready in {time.monotonic() - started:.1f}s, "
                  f"pid {child.pid}", flush=True)
            return True
        if time.monotonic() - started > child.role.timeout:
            child.stop(STOP_TIMEOUT, hurry=signals.hurry)
            return True
        time.sleep(0.25)
    return False


def _ended(code: int) -> str:
    """How a process ended, from its Popen returncode."""
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


class _Progress:
    """While a role starts: a live seconds counter on a terminal, a line every 30 s elsewhere."""

    def __init__(self, step: str, name: str, quiet: bool):
        self.prefix = f"{step} {name:<8}"
        self.tty = sys.stdout.isatty() and not quiet
        self.quiet = quiet
        self.shown = 0

    def tick(self, elapsed: float) -> None:
        if self.tty and int(elapsed) > self.shown:
            self.shown = int(elapsed)
            print(f"\r{self.prefix} starting... {self.shown}s", end="", flush=True)
        elif not self.tty and not self.quiet and int(elapsed) >= self.shown + 30:
            self.shown = int(elapsed) // 30 * 30
            print(f"{self.prefix} still starting ({self.shown}s)", flush=True)

    def done(self, text: str) -> None:
        clear = "\r\033[K" if self.tty and self.shown else ""
        print(f"{clear}{self.prefix} {text}", flush=True)


def _mlflow_link(config: StackConfig) -> str:
    """The experiment's runs in MLflow (its UI opens on GenAI pages from a bare address)."""
    base = f"http://localhost:{config.mlflow_port}"
    answer = fetch_json(f"http://{LOOPBACK}:{config.mlflow_port}/api/2.0/mlflow/experiments/"
                        f"get-by-name?experiment_name={config.model_name}")
    if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
        return base
    return mlflow_runs_url(base, answer[1]["experiment"]["experiment_id"])


def _print_ready(config: StackConfig) -> None:
    model = f"http://localhost:{config.rest_port}/v1/models/{config.model_name}"
    curl = (f"curl -s {model}/labels/{STABLE_LABEL}:predict -d '{{\"signature_name\": "
            "\"predict_image\", \"instances\": [{\"b64\": \"'\"$(base64 < digit.png | "
            "tr -d '\\n')\"'\"}]}'")
    store = os.environ.get("FEEDBACK_DB_URL") or DEFAULT_FEEDBACK_DB_URL
    print(f"""
Ready.
  Web UI      http://localhost:{config.webui_port}
  MLflow      {_mlflow_link(config)}
  Registry    {mlflow_model_url(f"http://localhost:{config.mlflow_port}", config.model_name)}
  TF Serving  {model}   (REST; gRPC localhost:{config.grpc_port})
  Feedback    {store}   (corrections: `python -m training feedback stats`)
  Predict a PNG of a digit:
    {curl}
`make train`, `make promote ARGS="--version N"` and `make list` work on this stack.
Ctrl-C stops everything (or `make down` from another terminal).
""", flush=True)


def _stop_all(children: list[Child], signals: StopSignals, quiet: bool = False) -> None:
    """Stop the roles in reverse start order; a second Ctrl-C kills what is left at once."""
    started = [c for c in children if c.proc is not None]
    if not started:
        return
    running = [c.role.name for c in reversed(started) if c.exit_code() is None]
    if not quiet:
        print(f"Stopping {', '.join(running) or 'what is left'}...", flush=True)
    for child in reversed(started):  # an exited role's group may still hold its children
        child.stop(STOP_TIMEOUT, hurry=signals.hurry)
    if not quiet:
        print("Stopped; nothing is left running.", flush=True)


def running_pid(root: Path) -> int | None:
    """The pid of a `python -m devstack up` running in `root`; clears a stale PID file."""
    path = root / PID_FILE
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    if pid != os.getpid() and _is_devstack(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def _is_devstack(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"devstack" in cmdline.read_bytes()


def down(config: StackConfig, timeout: float = 90.0) -> int:
    """Stop a `make up` running here, then any process of this checkout's stack still left."""
    pid = running_pid(config.root)
    if pid is not None:
        print(f"Stopping the stack (pid {pid})...", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_devstack(pid):
            if time.monotonic() > deadline:
                print(f"pid {pid} is still running after {timeout:.0f}s; see {LOG_DIR}/.",
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
    left = stack_processes(config.root)
    if left:
        print(f"Stopping {len(left)} process(es) of this checkout's stack that outlived "
              f"`make up`: pid {', '.join(map(str, sorted(left)))}", flush=True)
        end_processes(left)
    if pid is None and not left:
        print("No stack started by `make up` is running here (a `make up` in the foreground "
              "stops with Ctrl-C).")
    else:
        print("Stopped.")
    return 0
