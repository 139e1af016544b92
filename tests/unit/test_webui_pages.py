"""The drawing page: stable ids, no inline script, nothing fetched from outside."""

from __future__ import annotations

import re

import pytest

from webui import create_app

STABLE_IDS = ["canvas", "predict", "clear", "undo", "digit", "probabilities", "normalized",
              "model-version", "error"]


@pytest.fixture
def client():
    return create_app({"TF_SERVING_URL": "http://127.0.0.1:9"}).test_client()


@pytest.fixture
def page(client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("element_id", STABLE_IDS)
def test_stable_ids_exist_once(page, element_id):
    assert len(re.findall(rf'\bid="{element_id}"', page)) == 1


def test_ten_probability_rows(page):
    assert len(re.findall(r"<li data-digit=", page)) == 10


def test_no_inline_script_or_style(page):
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in tag
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no onclick= and friends


def test_nothing_comes_from_another_host(page, client):
    assert not re.search(r'(src|href)="(https?:)?//', page)
    css = client.get("/static/app.css").get_data(as_text=True)
    assert "url(" not in css and "@import" not in css


def test_accessible_basics(page):
    assert '<html lang="en">' in page
    assert 'name="viewport"' in page
    assert 'aria-live="polite"' in page
    assert re.search(r'<canvas id="canvas" tabindex="0"', page)


@pytest.mark.parametrize("path,mimetype", [("/static/app.js", "text/javascript"),
                                           ("/static/app.css", "text/css")])
def test_static_files_are_served(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype


def test_the_page_draws_with_the_contracts_pen(page):
    """The drawn-digit test set draws with contract.py's pen: the page must read the same."""
    from contract import CANVAS_EXPORT_SIDE, PEN_WIDTH

    assert f'data-pen-width="{PEN_WIDTH}"' in page
    assert f'data-export-side="{CANVAS_EXPORT_SIDE}"' in page
