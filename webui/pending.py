"""Answers waiting for a correction: kept in memory for a while, bounded in bytes.

Only the answers a person corrects are written to the store, so a prediction costs no
database write. An answer is kept `window` seconds (then a correction is refused as too old)
and the oldest go first when the bytes would pass `max_bytes`. The web UI runs as one process
(see metrics.py), so every thread sees every answer; a restart forgets them, and a correction
then gets a 404 that says so.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict

from corrections.store import Answer

_ID = re.compile(r"^p([0-9a-f]{1,12})-[0-9a-f]{16}$")


class UnknownPrediction(LookupError):
    """No answer with this id is kept here (never given, or given before a restart)."""


class ExpiredPrediction(LookupError):
    """The answer is older than the correction window."""


def new_id(now: float | None = None) -> str:
    """An opaque, unguessable id that also carries when it was made (to tell 'too old')."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"p{millis:x}-{secrets.token_hex(8)}"


def issued_at(prediction_id: str) -> float | None:
    """When an id was made (seconds since the epoch), or None if it is not one of ours."""
    match = _ID.match(prediction_id)
    return int(match.group(1), 16) / 1000 if match else None


class Pending:
    def __init__(self, window: float, max_bytes: int):
        self.window = window
        self.max_bytes = max_bytes
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, answer: Answer) -> None:
        size = _size(answer)
        with self._lock:
            self._answers[answer.prediction_id] = answer
            self._bytes += size
            cutoff = time.time() - self.window
            while len(self._answers) > 1 and (
                    self._bytes > self.max_bytes
                    or issued_at(next(iter(self._answers))) < cutoff):
                _, oldest = self._answers.popitem(last=False)
                self._bytes -= _size(oldest)

    def find(self, prediction_id: str) -> Answer:
        """The kept answer; ExpiredPrediction past the window, else UnknownPrediction."""
        made = issued_at(prediction_id)
        if made is None:
            raise UnknownPrediction(prediction_id)
        if time.time() - made > self.window:
            raise ExpiredPrediction(prediction_id)
        with self._lock:
            answer = self._answers.get(prediction_id)
        if answer is None:
            raise UnknownPrediction(prediction_id)
        return answer


def _size(answer: Answer) -> int:
    return len(answer.png or b"") + len(answer.normalized) + 512  # + the small fields
