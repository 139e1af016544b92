"""A small HTTP client for TF Serving's REST API (or our compatible local server).

It takes a base URL, keeps one urllib3 connection pool, puts a timeout on every call and
turns every way the model service can fail into one of three typed errors, which the API maps
to 503 (unreachable or model not loaded), 504 (too slow) or 502 (an answer we cannot use);
the model's refusal to decode the client's image is a fourth, the client's 400.
urllib3 rather than requests, and orjson rather than json: on the page's path they cost
0.8 ms less per prediction (bench/webui_latency.py).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass

import orjson
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from contract import (
    DIGIT_OUTPUT,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    NORMALIZED_OUTPUT,
    PROBABILITIES_OUTPUT,
    serving_version,
)
from webui import messages
from webui.validation import InvalidImage

# TensorFlow's words when its decoder refuses an image (TF Serving and ours pass them on in a
# 400): the op's name (DecodeImage, DecodePng, ...) or the decoder's own message.
DECODE_ERROR = re.compile(r"decode|invalid (png|jpeg|gif|bmp)|image (file )?format", re.I)


class ServingProblem(Exception):
    """The model service could not give an answer; `status` is what the web UI replies."""

    status = 502

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ServingUnavailable(ServingProblem):
    """Nothing listens, the connection broke, or the model or label is not loaded."""

    status = 503


class ServingTimeout(ServingProblem):
    """The model service did not answer within the timeout."""

    status = 504


class ServingBadAnswer(ServingProblem):
    """The model service answered, but not with something the web UI can use."""

    status = 502


class ImageRefused(InvalidImage, ServingProblem):
    """The model could not decode the client's image: the client's 400, like the web UI's own
    checks (and answered by their handler), yet still a ServingProblem to the challenger."""

    def __init__(self, detail: str):
        # The first line is TensorFlow's sentence; the rest names graph nodes.
        super().__init__(messages.IMAGE_REFUSED.format(detail=detail.splitlines()[0].strip()))


@dataclass(frozen=True)
class VersionStatus:
    version: str
    state: str


class TFServingClient:
    """Talk to one model on one TF Serving REST endpoint."""

    def __init__(self, base_url: str, model: str, timeout: float, pool_size: int = 32):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        # No automatic retries: a retried predict would hide an overloaded server and
        # double its latency. Connection refusals fail fast anyway.
        self.pool = urllib3.PoolManager(num_pools=1, maxsize=pool_size, retries=False)

    def model_url(self, version: str | None = None, label: str | None = None) -> str:
        url = f"{self.base_url}/v1/models/{self.model}"
        if version is not None:
            return f"{url}/versions/{version}"
        if label is not None:
            return f"{url}/labels/{label}"
        return url

    def status(self, version: str | None = None, label: str | None = None,
               timeout: float | None = None) -> list[VersionStatus]:
        """Return the versions' states: all of them, one version, or the one a label names."""
        body = self._call("GET", self.model_url(version, label), timeout=timeout)
        try:
            return [VersionStatus(str(v["version"]), str(v["state"]))
                    for v in body["model_version_status"]]
        except (KeyError, TypeError) as e:
            raise ServingBadAnswer(messages.SERVING_BAD_ANSWER.format(detail=repr(e))) from None

    def label_version(self, label: str, timeout: float | None = None) -> str:
        """The version `label` names now; ServingUnavailable when it names nothing AVAILABLE."""
        statuses = self.status(label=label, timeout=timeout)
        version = serving_version([vars(s) for s in statuses])
        if version is None:
            states = ", ".join(f"v{s.version} {s.state}" for s in statuses) or "no versions"
            raise ServingUnavailable(messages.MODEL_UNAVAILABLE.format(
                detail=f"{self.model} label {label!r} has no AVAILABLE version ({states})"))
        return version

    def predict_image(self, png: bytes, version: str) -> dict:
        """Run the `predict_image` signature of one version on one encoded image.

        Returns the row's outputs: `digit` int, `probabilities` [10], `normalized` [28][28].
        """
        payload = {
            "signature_name": IMAGE_SIGNATURE,
            "instances": [{IMAGE_INPUT: {"b64": base64.b64encode(png).decode("ascii")}}],
        }
        body = self._call("POST", self.model_url(version) + ":predict", json=payload)
        try:
            row = body["predictions"][0]
            return {
                "digit": int(row[DIGIT_OUTPUT]),
                "probabilities": [float(p) for p in row[PROBABILITIES_OUTPUT]],
                "normalized": row[NORMALIZED_OUTPUT],
            }
        except (KeyError, IndexError, TypeError, ValueError) as e:
            detail = f"no usable prediction in the answer ({e!r})"
            raise ServingBadAnswer(messages.SERVING_BAD_ANSWER.format(detail=detail)) from None

    def _call(self, method: str, url: str, timeout: float | None = None,
              json: dict | None = None) -> dict:
        timeout = self.timeout if timeout is None else timeout
        try:
            response = self.pool.request(
                method, url, body=None if json is None else orjson.dumps(json),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except NewConnectionError:  # a refused connection, though urllib3 files it as a timeout
            raise ServingUnavailable(messages.SERVING_DOWN) from None
        except TimeoutError:
            raise ServingTimeout(messages.SERVING_TIMEOUT.format(seconds=timeout)) from None
        except HTTPError:
            raise ServingUnavailable(messages.SERVING_DOWN) from None
        try:
            body = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            body = None
        if response.status < 400 and isinstance(body, dict):
            return body
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail or f"HTTP {response.status}"
        # 404: model or version not loaded; 503: the server is up but not serving yet.
        # A 400 about a label means the label names no loaded version.
        if response.status in (404, 503) or "label" in detail.lower():
            raise ServingUnavailable(messages.MODEL_UNAVAILABLE.format(detail=detail))
        # Only a predict sends a body, so only a predict's 400 can be about the image.
        if response.status == 400 and json is not None and DECODE_ERROR.search(detail):
            raise ImageRefused(detail)
        raise ServingBadAnswer(messages.SERVING_BAD_ANSWER.format(detail=detail))


class LabelCache:
    """Resolve a version label to a version number, remembered for a few seconds.

    TF Serving's predict answer does not say which version ran. Asking for the label on every
    request would double the round trips, so the answer is kept `ttl` seconds: a promotion
    shows up within that time. Only one thread refreshes at a time; the others wait for it.
    With `missing_ok` a label that names nothing loaded resolves to None, remembered as long
    (the challenger's label is usually unset); without, it raises every time.
    """

    def __init__(self, client: TFServingClient, label: str, ttl: float,
                 missing_ok: bool = False):
        self.client = client
        self.label = label
        self.ttl = ttl
        self.missing_ok = missing_ok
        self._lock = threading.Lock()
        self._version: str | None = None
        self._expires = 0.0

    @property
    def last(self) -> str | None:
        """The version last resolved, without asking the server."""
        return self._version

    def version(self) -> str | None:
        """Return the version the label names now (from cache when fresh)."""
        if time.monotonic() < self._expires:
            return self._version
        with self._lock:
            if time.monotonic() < self._expires:
                return self._version  # another thread refreshed while we waited
            try:
                self._version = self.client.label_version(self.label)
            except ServingProblem:
                if not self.missing_ok:
                    raise
                self._version = None  # the label is not set, or names nothing loaded
            self._expires = time.monotonic() + self.ttl
            return self._version

    def forget(self) -> None:
        """Drop the cached version, e.g. after the server said it no longer has it."""
        with self._lock:
            self._version = None
            self._expires = 0.0
