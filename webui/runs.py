"""Find the MLflow run behind a served model version, for the link next to each answer.

MLflow is optional for predictions: when it is down, slow or not an http(s) tracking server,
the UI shows the version without a link. Found runs are kept for good (a registered version
never changes its run). One lookup per version runs at a time, and only the request that
starts the first one waits for it: others answer without a link meanwhile. After a failure the
version has no link for `retry_after` seconds, then the next request starts one retry in the
background and answers at once (stale-while-revalidate), so a hung MLflow holds up nobody.
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
                 retry_after: float = 15.0, auth: tuple[str, str] | None = None):
        self.api = tracking_uri.rstrip("/") + "/api/2.0/mlflow"
        self.enabled = tracking_uri.startswith(("http://", "https://"))
        self.ui_url = ui_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retry_after = retry_after
        self.session = requests.Session()
        self.session.auth = auth  # MLflow's basic-auth app, when it runs with one
        self._found: dict[str, RunLink] = {}
        self._failed: dict[str, float] = {}  # version -> monotonic time to try again
        self._pending: set[str] = set()  # versions with a lookup in flight
        self._lock = threading.Lock()

    def find(self, version: str) -> RunLink | None:
        """Return the run that produced `version`, or None when MLflow cannot say (yet)."""
        if not self.enabled:
            return None
        with self._lock:
            if version in self._found:
                return self._found[version]
            retry_at = self._failed.get(version)
            if version in self._pending or time.monotonic() < (retry_at or 0.0):
                return None
            self._pending.add(version)
        if retry_at is None:  # never asked: worth one short wait for the link
            return self._refresh(version)
        threading.Thread(target=self._refresh, args=(version,), name=f"run-lookup-v{version}",
                         daemon=True).start()
        return None

    def _refresh(self, version: str) -> RunLink | None:
        """Look `version` up once and remember the answer; the caller holds its pending mark."""
        try:
            link = self._lookup(version)
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            log.warning("MLflow lookup for %s v%s failed: %s", self.model, version, e)
            link = None
        with self._lock:
            self._pending.discard(version)
            if link is None:
                self._failed[version] = time.monotonic() + self.retry_after
            else:
                self._found[version] = link
                self._failed.pop(version, None)
        return link

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
