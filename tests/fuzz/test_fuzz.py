"""Property-based fuzzing of the public HTTP APIs, bounded in time (schemathesis + hypothesis).

The web UI's /api/* against its own OpenAPI document (webui/openapi.json, served at
/api/openapi.json), and our `python -m serving` REST predict bodies against TF Serving's
contract (DESIGN.md): whatever is sent, no 5xx, and every answer is one the document lists,
with the documented body. Both run in front of the session's real model.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from contract import MODEL_NAME
from tests.support.servers import local_webui

pytestmark = pytest.mark.integration

EXAMPLES = 60  # per operation: about a minute in all on two busy cores
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
# The schemas say "a string", not "a PNG of a digit": a valid-looking body may still be a 4xx.
NOT_CHECKED = [positive_data_acceptance]

ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
         "properties": {"error": {"type": "string", "minLength": 1}}}
PREDICT_BODY = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string"},
        "instances": {"type": "array", "maxItems": 3},
        "inputs": {},
    },
}
SERVING_CONTRACT = {
    "openapi": "3.0.3",
    "info": {"title": "TF Serving REST predict (DESIGN.md)", "version": "1"},
    "paths": {
        f"/v1/models/{MODEL_NAME}:predict": {
            "post": {
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": PREDICT_BODY}}},
                "responses": {
                    "200": {"description": "rows or columns out", "content": {
                        "application/json": {"schema": {
                            "type": "object",
                            "oneOf": [{"required": ["predictions"]},
                                      {"required": ["outputs"]}]}}}},
                    "400": {"description": "bad request", "content": {
                        "application/json": {"schema": ERROR}}},
                    "404": {"description": "no such model", "content": {
                        "application/json": {"schema": ERROR}}},
                },
            },
        },
    },
}


def fuzz(schema, base_url: str) -> None:
    """Run every operation of `schema` against `base_url` with generated requests."""
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(base_url=base_url, excluded_checks=NOT_CHECKED, timeout=30)

        check()


def test_webui_api_answers_as_documented(serving_url):
    with local_webui(serving_url) as url:
        fuzz(schemathesis.openapi.from_url(f"{url}/api/openapi.json"), url)


def test_serving_predict_answers_as_tf_serving_does(serving_url):
    fuzz(schemathesis.openapi.from_dict(SERVING_CONTRACT), serving_url)
