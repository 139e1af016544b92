"""Answers waiting for a correction: kept in the shared store for the correction window.

Every answer is written to the store (`pending_answers`) at predict time, so a correction may
reach any replica of the web UI, or one restarted since; expired rows are purged now and then.
Nothing is evicted before its window ends: a replica's memory holds only a running total of
the PNG bytes it kept in the window, and past `max_png_bytes` its answers are kept without
their PNG (the 28x28, which is what training uses, is always kept). So a flood of large
drawings from one client costs everyone else at most their PNGs, never their corrections.
A store that is down does not fail predictions: their answers are then not kept, and writes
are retried after a pause, so a PostgreSQL that does not answer holds no prediction for long.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import replace

from corrections.store import Answer, FeedbackStore, StoreUnavailable

log = logging.getLogger(__name__)

_ID = re.compile(r"^p([0-9a-f]{1,12})-[0-9a-f]{16}$")
PURGE_EVERY_S = 60.0  # how often a replica deletes expired answers from the store
STORE_RETRY_S = 5.0  # after a failed write, predictions skip the store this long


class UnknownPrediction(LookupError):
    """No answer with this id is kept (never given, or given while the store was down)."""


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


class PngBudget:
    """The PNG bytes this replica kept in the last `window` seconds, in per-second buckets.

    Memory is one bucket per second of the window however many predictions there are.
    """

    def __init__(self, window: float, max_bytes: int):
        self.window = window
        self.max_bytes = max_bytes
        self._buckets: deque[list[int]] = deque()  # [second, bytes], oldest first
        self._total = 0
        self._lock = threading.Lock()

    def spend(self, size: int, now: float) -> bool:
        """Count `size` bytes if they fit the budget now; False (and count nothing) if not."""
        second = int(now)
        with self._lock:
            while self._buckets and self._buckets[0][0] < second - self.window:
                self._total -= self._buckets.popleft()[1]
            if self._total + size > self.max_bytes:
                return False
            if not self._buckets or self._buckets[-1][0] != second:
                self._buckets.append([second, 0])
            self._buckets[-1][1] += size
            self._total += size
            return True


class Pending:
    def __init__(self, store: FeedbackStore, window: float, max_png_bytes: int):
        self.store = store
        self.window = window
        self.png_budget = PngBudget(window, max_png_bytes)
        self._next_purge = 0.0
        self._skip_until = 0.0

    def add(self, answer: Answer) -> None:
        """Keep `answer` in the store until its window ends; never raises for a store down."""
        now = time.time()
        if time.monotonic() < self._skip_until:
            return
        if answer.png is not None and not self.png_budget.spend(len(answer.png), now):
            answer = replace(answer, png=None)
        made = issued_at(answer.prediction_id) or now
        try:
            self.store.keep_pending(answer, made + self.window)
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY_S
                self.store.purge_pending(now)
        except StoreUnavailable as e:
            self._skip_until = time.monotonic() + STORE_RETRY_S
            log.warning("feedback store %s: %s; answers are not kept for corrections for "
                        "%g s", self.store.where(), e, STORE_RETRY_S)

    def find(self, prediction_id: str) -> Answer:
        """The kept answer; ExpiredPrediction past the window, else UnknownPrediction.

        StoreUnavailable if the store cannot be read.
        """
        made = issued_at(prediction_id)
        if made is None:
            raise UnknownPrediction(prediction_id)
        if time.time() - made > self.window:
            raise ExpiredPrediction(prediction_id)
        answer = self.store.pending(prediction_id)
        if answer is None:
            raise UnknownPrediction(prediction_id)
        return answer
