"""`python -m webui` for real: a DNS-rebinding Host is refused, its probes answer a pod IP.

No model is needed: the refusal comes before anything reaches TF Serving.
"""

from __future__ import annotations

import pytest
import requests

from tests.support.servers import free_port, local_webui

pytestmark = pytest.mark.integration


def test_the_server_refuses_a_rebinding_host_and_answers_its_own_names():
    with local_webui(f"http://127.0.0.1:{free_port()}") as url:
        port = url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            assert requests.get(f"{url}/", headers={"Host": host}, timeout=10).status_code == 200
        refused = requests.post(f"{url}/api/feedback", headers={"Host": f"rebind.example:{port}"},
                                json={"prediction_id": "p1-0", "digit": 1}, timeout=10)
        assert refused.status_code == 400 and "WEBUI_ALLOWED_HOSTS" in refused.json()["error"]
        probe = requests.get(f"{url}/healthz", headers={"Host": f"10.244.0.7:{port}"}, timeout=10)
        assert probe.status_code == 200
