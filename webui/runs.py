"""Find the MLflow run behind a served model version, for the link next to each answer.

MLflow is optional for predictions: when it is down, slow or not an http(s) tracking server,
the UI shows the version without a link. Found runs are kept for good (a registered version
never changes its run). Lookups run in the background, one per version at a time; a request
waits for one at most `wait` seconds, and only while the version has never been tried, so a
hung MLflow costs the first answers after a restart or promotion that short wait, not its
timeout. After a failure the version has no link for `retry_after` seconds, then the next
request starts one retry in the background and answers at once (stale-while-revalidate).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import requests

from contract import RUN_ID_TAG, mlflow_run_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLink:
    run_id: str
    experiment_id: str | None
    url: str | None

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "url": self.url}


class RunFinder:
    """Look up `registered model version -> run` through MLflow's REST API."""

    def __init__(self, tracking_uri: str, ui_url: str, model: str, timeout: float = 2.0,
                 retry_after: float = 15.0, wait: float = 0.1,
                 auth: tuple[str, str] | None = None):
        self.api = tracking_uri.rstrip("/") + "/api/2.0/mlflow"
        self.enabled = tracking_uri.startswith(("http://", "https://"))
        self.ui_url = ui_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retry_after = retry_after
        # An answer and its challenger's link wait twice this at most, under
        # CHALLENGER_TIMEOUT; a slower MLflow's link comes with a later answer.
        self.wait = wait
        self.session = requests.Session()
        self.session.auth = auth  # MLflow's basic-auth app, when it runs with one
        self._found: dict[str, RunLink] = {}
        self._failed: dict[str, float] = {}  # version -> monotonic time to try again
        self._lookups: dict[str, threading.Event] = {}  # version -> set when its lookup ends
        self._lock = threading.Lock()

    def find(self, version: str) -> RunLink | None:
        """Return the run that produced `version`, or None when MLflow cannot say (yet)."""
        if not self.enabled:
            return None
        with self._lock:
            if version in self._found:
                return self._found[version]
            tried = version in self._failed
            done = self._lookups.get(version)
            if done is None:
                if time.monotonic() < self._failed.get(version, 0.0):
                    return None
                done = self._lookups[version] = threading.Event()
                threading.Thread(target=self._refresh, args=(version, done), daemon=True,
                                 name=f"run-lookup-v{version}").start()
        if not tried:  # never answered either way: worth a short wait for the link
            done.wait(self.wait)
        return self._found.get(version)

    def _refresh(self, version: str, done: threading.Event) -> None:
        """Look `version` up once, remember the answer and let the waiters go."""
        try:
            link = self._lookup(version)
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            log.warning("MLflow lookup for %s v%s failed: %s", self.model, version, e)
            link = None
        with self._lock:
            del self._lookups[version]
            if link is None:
                self._failed[version] = time.monotonic() + self.retry_after
            else:
                self._found[version] = link
                self._failed.pop(version, None)
        done.set()

    def _lookup(self, version: str) -> RunLink:
        mv = self._get("model-versions/get", name=self.model, version=version)["model_version"]
        run_id = mv.get("run_id") or {t["key"]: t["value"] for t in mv.get("tags", [])}.get(
            RUN_ID_TAG)
        if not run_id:
            raise KeyError(f"version {version} has no run_id")
        run = self._get("runs/get", run_id=run_id)["run"]
        experiment_id = run["info"]["experiment_id"]
        url = mlflow_run_url(self.ui_url, experiment_id, run_id)
        return RunLink(run_id, experiment_id, url)

    def _get(self, path: str, **params) -> dict:
        response = self.session.get(f"{self.api}/{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        return response.json()
