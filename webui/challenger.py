"""The challenger: the version that label `canary` names, asked beside the main answer.

It runs on a thread pool of its own, through a TF Serving client of its own whose timeout is
short, so it can neither delay the main answer beyond that timeout (counted from when the
request started) nor fail it: every problem becomes a note in the answer. A promotion makes
neither a phantom: a cached label naming a version since unloaded is looked up again, and a
challenger that turns out to be the version the main answer came from is no challenger.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from webui.tfs_client import LabelCache, ServingProblem, ServingUnavailable, TFServingClient


@dataclass(frozen=True)
class ChallengerAnswer:
    version: str
    digit: int | None = None
    probabilities: list[float] | None = None
    note: str | None = None  # why there is no digit


@dataclass(frozen=True)
class Asked:
    """A challenger call in flight, and when the main answer stops waiting for it."""

    future: Future
    deadline: float


class Challenger:
    def __init__(self, client: TFServingClient, label: str, ttl: float, workers: int = 16):
        self.client = client
        self.labels = LabelCache(client, label, ttl, missing_ok=True)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="challenger")

    @property
    def timeout(self) -> float:
        return self.client.timeout

    def ask(self, png: bytes, main_version: str) -> Asked:
        """Start asking the challenger about `png`; never blocks."""
        deadline = time.monotonic() + self.timeout
        return Asked(self._executor.submit(self._answer, png, main_version), deadline)

    def result(self, asked: Asked, main_version: str) -> ChallengerAnswer | None:
        """Its answer, a note that it was late, or None when no other version is labelled.

        `main_version` is the version that gave the main answer, which a promotion may have
        changed since the challenger was asked.
        """
        try:
            answer = asked.future.result(timeout=max(0.0, asked.deadline - time.monotonic()))
        except FutureTimeout:
            version = self.labels.last  # the last known: the lookup itself may be what is late
            if version is None or version == main_version:
                return None
            return ChallengerAnswer(version, note=f"did not answer within "
                                                  f"{self.timeout * 1000:.0f} ms")
        return None if answer is None or answer.version == main_version else answer

    def _answer(self, png: bytes, main_version: str) -> ChallengerAnswer | None:
        """Ask the version label canary names; once more if that version is gone meanwhile."""
        for last_try in (False, True):
            version = self.labels.version()
            if version is None or version == main_version:
                return None
            try:
                outputs = self.client.predict_image(png, version)
            except ServingUnavailable as e:
                if not last_try:  # a promotion may have unloaded it since the label was cached
                    self.labels.forget()
                    continue
                return ChallengerAnswer(version, note=e.message)
            except ServingProblem as e:
                return ChallengerAnswer(version, note=e.message)
            return ChallengerAnswer(version, outputs["digit"], outputs["probabilities"])
