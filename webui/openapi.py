"""`GET /api/openapi.json`: the JSON API described for clients and for the fuzz tests.

The document is webui/openapi.json, one file each route's author extends; tests/fuzz holds
every answer to it.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app

DOCUMENT = Path(__file__).with_name("openapi.json")

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def document():
    return current_app.response_class(DOCUMENT.read_bytes(), mimetype="application/json")
