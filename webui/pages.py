"""The drawing page. Everything it does after loading goes through the JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", feedback=current_app.config["FEEDBACK"])
