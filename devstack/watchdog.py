"""Stop every role of a checkout's stack once `python -m devstack up` is gone, however it went.

Usage (devstack starts it; nobody needs to):
    python -m devstack.watchdog CHECKOUT < pipe-whose-writer-is-devstack

The watchdog runs in a session of its own, so the terminal's Ctrl-C and SIGHUP pass it by. It
blocks reading its stdin, a pipe only devstack holds open: the kernel closes that pipe when
devstack exits for any reason (Ctrl-C through `| tee`, a closed terminal, `kill -9`), and the
watchdog then ends every process that carries the checkout's mark in its environment (see
devstack.processes.stack_processes). After a clean stop there is nothing left to end.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.processes import end_processes, stack_processes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0])
    while sys.stdin.buffer.read(4096):
        pass
    end_processes(stack_processes(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
