"""The drawing page. Everything it does after loading goes through the JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from contract import CANVAS_EXPORT_SIDE, PEN_WIDTH

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", feedback=current_app.config["FEEDBACK"],
                           window_minutes=f"{current_app.config['FEEDBACK_WINDOW_SECONDS'] / 60:g}",
                           pen_width=PEN_WIDTH, export_side=CANVAS_EXPORT_SIDE)
