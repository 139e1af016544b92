"""One HTTP GET for the readiness probes and the port check: an answer, or None, never a raise."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

MAX_BODY = 65536  # status pages are small; an unknown server's page need not be read whole


def fetch(url: str, timeout: float = 2) -> tuple[int, bytes] | None:
    """(status, body) for any HTTP answer, errors included; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as err:
        return err.code, err.read(MAX_BODY)
    except (OSError, ValueError):
        return None


def fetch_json(url: str, timeout: float = 2) -> tuple[int, object] | None:
    """Like fetch, with the body parsed as JSON (None where it is not JSON)."""
    answer = fetch(url, timeout)
    if answer is None:
        return None
    try:
        return answer[0], json.loads(answer[1])
    except ValueError:
        return answer[0], None
