"""Which `Host` headers the web UI answers: a guard against DNS rebinding.

A page on another site can point its own name at 127.0.0.1 and then send requests that the
browser treats as same-origin, e.g. corrections that `train --feedback` learns from. Such
requests carry that site's name as Host; refusing names not in `WEBUI_ALLOWED_HOSTS` stops
them, as MLflow's `--allowed-hosts` does for MLflow.

Patterns are comma-separated, matched whole and case-insensitively, with `*` for any text
(`webui:*` is webui on any port, `*` allows every host). Unset, the loopback names and the
address the server binds to are allowed, with and without a port. `/healthz`, `/readyz` and
`/metrics` answer any Host: orchestrators' probes and Prometheus call a pod by its IP, and
those routes read nothing private and change nothing.
"""

from __future__ import annotations

import re

from contract import LOOPBACK

LOOPBACK_NAMES = ("localhost", LOOPBACK, "[::1]")
ANY_HOST_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class AllowedHosts:
    """The patterns of `WEBUI_ALLOWED_HOSTS`, or the default when it is empty."""

    def __init__(self, setting: str, bind_host: str | None = None):
        self.patterns = tuple(p.strip() for p in setting.split(",") if p.strip()) or \
            default_patterns(bind_host)
        # Only `*` is special: IPv6 names have brackets, which fnmatch would read as a class.
        self._regex = re.compile("|".join(".*".join(map(re.escape, p.split("*")))
                                          for p in self.patterns), re.IGNORECASE)

    def allows(self, host: str) -> bool:
        return self._regex.fullmatch(host) is not None


def default_patterns(bind_host: str | None) -> tuple[str, ...]:
    """The loopback names and the bind address, each alone and with any port."""
    names = [*LOOPBACK_NAMES]
    if bind_host:
        names.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    return tuple(pattern for name in dict.fromkeys(names) for pattern in (name, f"{name}:*"))
