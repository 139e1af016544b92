"""`python -m training retrain`: the loop closes itself, one idempotent run at a time.

    python -m training retrain          # from a schedule: compose profile, make up, CronJob

When at least RETRAIN_MIN_CORRECTIONS (200) corrections arrived since the champion was
trained and since the last retrain, one run trains a challenger on them (fine-tuned from the
champion unless --no-from-champion), publishes it, serves it as label canary and judges it
with `promote`'s gate: every figure promote compares with the champion (MNIST test, the drawn
digits, the held-out corrections, ...) within --tolerance. It then promotes it, or keeps the
champion, takes the canary down and says why. Otherwise it does nothing.

Every decision is visible three ways: tags on the version (`retrain.decision`,
`retrain.reason`), a line in `feedback stats`, and a log line.

Idempotent: each challenger records the highest store row it was trained with
(`retrain.feedback_through`); corrections count as new only above it, so a second run on an
unchanged store does nothing.

One at a time: the lock is a registered model named `<model>-retrain-lock` in MLflow, which
every stack already shares between the web UI and the trainers. Creating a registered model
whose name exists fails in MLflow's database (a unique key), so of two runs exactly one
creates it; its tags say who holds it and until when. A holder that died (SIGKILL, a lost
node) leaves it behind: it is stale when its process is gone on this host or its time
(LOCK_TTL_S) is up, and the next run takes it over. The store cannot hold the lock: its
schema belongs to the web UI, and a lock there would not be visible in MLflow's UI, where a
running retrain now shows as that model.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from contract import CHALLENGER_ALIAS, CHAMPION_ALIAS
from training import feedback, registry, tracking
from training.config import Settings

log = logging.getLogger(__name__)

DECISION_TAG = "retrain.decision"  # promoted | refused
REASON_TAG = "retrain.reason"
THROUGH_TAG = "retrain.feedback_through"  # highest store row id the challenger learned from
CORRECTIONS_TAG = "retrain.corrections"  # how many of them were new
LOCK_TTL_S = 2 * 3600  # a lock older than this is stale: a retrain takes minutes
TAKEOVER_SETTLE_S = 1.0  # after taking over a stale lock, wait this long, then check it is ours


@dataclass(frozen=True)
class Decision:
    action: str  # nothing | busy | promoted | refused
    reason: str
    version: int | None = None
    champion: int | None = None
    new_corrections: int = 0

    def line(self) -> str:
        """The decision in one line, for the log and the terminal."""
        what = {"nothing": "nothing to do", "busy": "another retrain is running",
                "promoted": f"promoted version {self.version}",
                "refused": f"kept the champion, version {self.champion}; version "
                           f"{self.version} refused"}[self.action]
        return f"retrain: {what}: {self.reason}"


# ---- what is new ------------------------------------------------------------------------------

def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps no zone


def new_corrections(client, settings: Settings, rows, champion: int) -> tuple[int, int]:
    """(how many rows are new, the highest row id): stored after the champion was registered
    and above every earlier retrain's `retrain.feedback_through`."""
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    through = max((int(v.tags[THROUGH_TAG]) for v in versions if THROUGH_TAG in v.tags),
                  default=0)
    registered = next(v for v in versions if int(v.version) == champion).creation_timestamp
    since = datetime.fromtimestamp(registered / 1000, UTC)
    fresh = [r for r in rows if r.id > through and _utc(r.corrected_at) > since]
    return len(fresh), max((r.id for r in rows), default=0)


# ---- the lock ---------------------------------------------------------------------------------

class Lock:
    """The retrain lock: a registered model in MLflow that only one run can create."""

    def __init__(self, client, settings: Settings, ttl_s: float = LOCK_TTL_S):
        self.client, self.ttl_s = client, ttl_s
        self.name = f"{settings.model_name}-retrain-lock"
        self.me = {"holder": uuid.uuid4().hex, "host": socket.gethostname(),
                   "pid": str(os.getpid())}
        self.held_by: dict | None = None  # the other holder's tags, when it is busy

    def acquire(self) -> bool:
        if self._create():
            return True
        self.held_by = self._tags()
        if self.held_by is None or not self._stale(self.held_by):
            return False
        log.warning("retrain lock %s was left by %s (pid %s on %s): taking it over", self.name,
                    self.held_by.get("holder"), self.held_by.get("pid"), self.held_by.get("host"))
        self._delete()
        if not self._create():
            return False
        time.sleep(TAKEOVER_SETTLE_S)  # two runs that saw the same stale lock: one keeps it
        return (self._tags() or {}).get("holder") == self.me["holder"]

    def release(self) -> None:
        if (self._tags() or {}).get("holder") == self.me["holder"]:
            self._delete()

    def _create(self) -> bool:
        from mlflow.exceptions import MlflowException

        now = time.time()
        tags = {**self.me, "since": f"{now:.0f}", "expires": f"{now + self.ttl_s:.0f}"}
        try:
            self.client.create_registered_model(
                self.name, tags=tags, description="Held by a running `python -m training "
                "retrain`; gone when it ends. Safe to delete if no retrain runs.")
            return True
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return False

    def _tags(self) -> dict | None:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(self.name).tags)
        except MlflowException:
            return None

    def _delete(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model(self.name)
        except MlflowException:
            pass  # gone already

    def _stale(self, tags: dict) -> bool:
        if float(tags.get("expires", 0)) < time.time():
            return True
        if tags.get("host") != self.me["host"] or not tags.get("pid", "").isdigit():
            return False
        try:
            os.kill(int(tags["pid"]), 0)
        except ProcessLookupError:
            return True  # its process is gone
        except PermissionError:
            return False
        return False


# ---- one run ----------------------------------------------------------------------------------

def run(settings: Settings, *, min_corrections: int, tolerance: float = registry.DEFAULT_TOLERANCE,
        min_accuracy: float = registry.DEFAULT_MIN_ACCURACY, **training) -> Decision:
    """Decide, and act: nothing, or train a challenger, serve it as canary, promote or refuse.

    training: train.run's arguments for the challenger (profile, from_champion, ...).
    """
    client = tracking.connect(settings)
    champion = registry.alias_version(client, settings, CHAMPION_ALIAS)
    if champion is None:
        return _said(Decision("nothing", "there is no champion yet (python -m training "
                                         "bootstrap trains one)"))
    store = feedback.open_store(settings, must_exist=False)
    if store is None:
        return _said(Decision("nothing", f"no corrections yet: the store {settings.feedback_db_url}"
                                         " does not exist", champion=champion))
    lock = Lock(client, settings)
    if not lock.acquire():
        held = lock.held_by or {}
        return _said(Decision("busy", f"{lock.name} is held by pid {held.get('pid')} on "
                                      f"{held.get('host')} since {_when(held.get('since'))}",
                              champion=champion))
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a Job's deadline: release the lock
    try:
        return _said(_locked(client, settings, store, champion, min_corrections, tolerance,
                             min_accuracy, training))
    finally:
        lock.release()
        signal.signal(signal.SIGTERM, previous)


def _locked(client, settings, store, champion, min_corrections, tolerance, min_accuracy,
            training) -> Decision:
    """The work under the lock; counted again here, since another run may just have ended."""
    from training import train

    new, through = new_corrections(client, settings, feedback.read_rows(store), champion)
    if new < min_corrections:
        return Decision("nothing", f"{new} new corrections since version {champion} was "
                        f"trained; a retrain takes {min_corrections} (RETRAIN_MIN_CORRECTIONS)",
                        champion=champion, new_corrections=new)
    log.info("retrain: %d new corrections since version %d: training a challenger", new,
             champion)
    result = train.run(settings, use_feedback=True, verbose=0, **training)
    version = result.version
    client.set_model_version_tag(settings.model_name, version, THROUGH_TAG, str(through))
    client.set_model_version_tag(settings.model_name, version, CORRECTIONS_TAG, str(new))
    try:
        registry.promote(settings, version, min_accuracy, canary=True, client=client)
        log.info("retrain: version %d serves as canary; judging it", version)
        registry.promote(settings, version, min_accuracy, client=client, tolerance=tolerance)
        decision = Decision("promoted", f"trained on {new} new corrections; it passed the gate "
                            f"against version {champion} (tolerance {100 * tolerance:.2f} "
                            "points)", version, champion, new)
    except registry.PromotionRefused as refused:
        _take_down_canary(client, settings, version)
        decision = Decision("refused", str(refused), version, champion, new)
    client.set_model_version_tag(settings.model_name, version, DECISION_TAG, decision.action)
    client.set_model_version_tag(settings.model_name, version, REASON_TAG, decision.reason[:4000])
    return decision


def _take_down_canary(client, settings: Settings, version: int) -> None:
    """Label canary back to the champion, so people's answers no longer wait on the loser."""
    if registry.alias_version(client, settings, CHALLENGER_ALIAS) == version:
        client.delete_registered_model_alias(settings.model_name, CHALLENGER_ALIAS)
        registry.sync_serving_config(client, settings)


def decisions(client, settings: Settings) -> list[dict]:
    """Every retrain decision recorded on the versions, newest first (for `feedback stats`)."""
    rows = []
    for v in client.search_model_versions(f"name='{settings.model_name}'"):
        if DECISION_TAG in v.tags:
            rows.append({"version": int(v.version), "decision": v.tags[DECISION_TAG],
                         "reason": v.tags.get(REASON_TAG, ""),
                         "corrections": int(v.tags.get(CORRECTIONS_TAG, 0)),
                         "at": _when(v.last_updated_timestamp / 1000)})
    return sorted(rows, key=lambda row: -row["version"])


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # unwinds through the finally blocks: lock released, run FAILED


def _when(seconds) -> str:
    if seconds is None:
        return "?"
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _said(decision: Decision) -> Decision:
    log.info(decision.line())
    return decision
