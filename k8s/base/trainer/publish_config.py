"""Write TF Serving's models.config from MLflow's aliases into the tfserving-config ConfigMap.

Runs in the trainer image after `python -m training bootstrap|train|promote` (the Jobs in
k8s/base/trainer.yaml), with the pod's service account, whose Role may patch only that
ConfigMap. The ConfigMap is the cluster's models.config: every TF Serving replica mounts it
and re-reads it every 5 s, so this one PATCH is the promotion. Standard library and the
training package only: the trainer image has nothing else.

Usage (inside the Job's pod):
    python /scripts/publish_config.py
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

from training import registry, tracking
from training.config import Settings

CONFIGMAP = "tfserving-config"
KEY = "models.config"
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_URL = "https://kubernetes.default.svc"


def patch_body(settings: Settings) -> dict | None:
    """The merge patch setting models.config from the aliases; None when there is no champion."""
    written = registry.sync_serving_config(tracking.connect(settings), settings)
    return None if written is None else {"data": {KEY: Path(written).read_text()}}


def send(body: dict, api_url: str = API_URL, account: Path = ACCOUNT) -> int:
    """PATCH the ConfigMap in this pod's namespace; return the API server's status."""
    namespace = (account / "namespace").read_text().strip()
    request = urllib.request.Request(
        f"{api_url}/api/v1/namespaces/{namespace}/configmaps/{CONFIGMAP}",
        data=json.dumps(body).encode(), method="PATCH",
        headers={"Authorization": f"Bearer {(account / 'token').read_text().strip()}",
                 "Content-Type": "application/merge-patch+json"})
    context = ssl.create_default_context(cafile=str(account / "ca.crt")) \
        if (account / "ca.crt").is_file() else None
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.status


def main() -> int:
    body = patch_body(Settings.from_env())
    if body is None:
        print("no champion yet: tfserving-config left as it is")
        return 0
    status = send(body, os.environ.get("KUBERNETES_API_URL", API_URL))
    print(f"{CONFIGMAP}/{KEY} updated (HTTP {status}):\n{body['data'][KEY]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
