"""POST /api/feedback through Flask's test client: every refusal stores nothing.

The answer being corrected is put where /api/predict keeps it (no model is needed for the
refusals); the whole predict -> correct path with a real model is in tests/integration.
"""

from __future__ import annotations

import time

import pytest

from tests.support.servers import free_port
from tests.unit.test_feedback_store import answer
from webui import create_app, pending


@pytest.fixture
def app(tmp_path):
    return create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}",
                       "FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db"})


@pytest.fixture
def kept(app):
    """An answer the server gave a moment ago, awaiting a correction."""
    given = answer(pending.new_id(), digit=3)
    app.extensions["webui.pending"].add(given)
    return given


def stored(app) -> int:
    return app.extensions["webui.store"].count()


def test_a_correction_is_stored_with_what_the_server_answered(app, kept):
    client = app.test_client()
    # The client cannot change what is stored about the answer: extra fields are ignored.
    response = client.post("/api/feedback", json={"prediction_id": kept.prediction_id,
                                                  "digit": 4, "model_version": "99"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["prediction_id"] == kept.prediction_id and body["digit"] == 3
    assert body["correction"] == 4 and isinstance(body["id"], int)
    again = client.post("/api/feedback", json={"prediction_id": kept.prediction_id, "digit": None})
    assert again.status_code == 201 and again.get_json()["id"] == body["id"]
    row = app.extensions["webui.store"].get(kept.prediction_id)
    assert row.answer.model_version == "1" and row.correction is None and row.label == 3
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'webui_feedback_total{verdict="wrong",version="1"} 1.0' in metrics
    assert 'webui_feedback_total{verdict="right",version="1"} 1.0' in metrics


@pytest.mark.parametrize("body, status, words", [
    ({"prediction_id": "p1-0", "digit": 4}, 404, "not known"),
    ({"prediction_id": "FRESH", "digit": 4}, 404, "not known"),
    ({"prediction_id": "HOUR_OLD", "digit": 4}, 410, "older than 15"),
    ("KEPT", 400, "0 to 9"),  # digit 10
    ({"digit": 4}, 400, "prediction_id"),
    ({"prediction_id": 12, "digit": 4}, 400, "prediction_id"),
    ({"prediction_id": "KEPT"}, 400, "\"digit\" field is missing"),
    ({"prediction_id": "KEPT", "digit": "4"}, 400, "not \"4\""),
    ({"prediction_id": "KEPT", "digit": 4.0}, 400, "whole number"),
    ({"prediction_id": "KEPT", "digit": True}, 400, "whole number"),
    ({"prediction_id": "KEPT", "digit": -1}, 400, "0 to 9"),
    ([1, 2], 400, "JSON object"),
    ("not json", 400, "JSON object"),
    ({"prediction_id": "KEPT", "digit": 4, "pad": "x" * 10_000}, 413, "larger than 4096 bytes"),
])
def test_bad_corrections_are_4xx_json_and_store_nothing(app, kept, body, status, words):
    client = app.test_client()
    if body == "KEPT":
        body = {"prediction_id": kept.prediction_id, "digit": 10}
    elif isinstance(body, dict) and body.get("prediction_id") == "KEPT":
        body = {**body, "prediction_id": kept.prediction_id}
    elif isinstance(body, dict) and body.get("prediction_id") in ("FRESH", "HOUR_OLD"):
        # Made now, not at collection: a long test session must not age them.
        made = time.time() - (3600 if body["prediction_id"] == "HOUR_OLD" else 0)
        body = {**body, "prediction_id": pending.new_id(made)}
    if body == "not json":
        response = client.post("/api/feedback", data="{digit: 4", content_type="application/json")
    else:
        response = client.post("/api/feedback", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json and words in response.get_json()["error"]
    assert stored(app) == 0


def test_store_down_is_503_with_what_to_do_and_predictions_are_untouched(tmp_path):
    app = create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}",
                      "FEEDBACK_DB_URL": f"postgresql+psycopg://x@127.0.0.1:{free_port()}/x"})
    given = answer(pending.new_id())
    app.extensions["webui.pending"].add(given)
    response = app.test_client().post("/api/feedback",
                                      json={"prediction_id": given.prediction_id, "digit": 2})
    assert response.status_code == 503
    assert "FEEDBACK_DB_URL" in response.get_json()["error"]
    assert "nothing was stored" in response.get_json()["error"]


def test_feedback_off_hides_the_controls_and_refuses_corrections(tmp_path):
    app = create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}", "FEEDBACK": "off",
                      "FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db"})
    page = app.test_client().get("/").get_data(as_text=True)
    assert 'id="feedback"' not in page and "data-feedback-url" not in page
    response = app.test_client().post("/api/feedback", json={"prediction_id": "x", "digit": 1})
    assert response.status_code == 404 and "FEEDBACK=off" in response.get_json()["error"]
    assert not (tmp_path / "feedback.db").exists()


def test_the_page_says_what_is_kept_when_feedback_is_on(app):
    page = app.test_client().get("/").get_data(as_text=True)
    assert 'id="feedback"' in page and 'data-feedback-url="/api/feedback"' in page
    assert "Nothing about you is kept" in page and "deleted after 15 minutes" in page
    assert page.count('aria-label="Wrong, it is ') == 10


@pytest.mark.parametrize("env, error", [
    ({"FEEDBACK": "maybe"}, "FEEDBACK must be on or off"),
    ({"CONFIDENCE_THRESHOLD": "1.5"}, "CONFIDENCE_THRESHOLD"),
    ({"CONFIDENCE_THRESHOLD": "high"}, "CONFIDENCE_THRESHOLD"),
    ({"CHALLENGER_TIMEOUT": "0"}, "CHALLENGER_TIMEOUT must be positive"),
])
def test_bad_settings_fail_at_start(env, error):
    from webui import load_config

    with pytest.raises(ValueError, match=error):
        load_config(environ=env)


def test_past_the_png_budget_answers_are_kept_without_their_png_and_none_is_evicted(app):
    kept = pending.Pending(app.extensions["webui.store"], window=60,
                           max_png_bytes=3 * len(answer().png))
    ids = [pending.new_id() for _ in range(5)]
    for prediction_id in ids:
        kept.add(answer(prediction_id))
    assert [kept.find(i).png is not None for i in ids] == [True, True, True, False, False]


def test_the_png_budget_frees_what_left_the_window():
    budget = pending.PngBudget(window=10, max_bytes=100)
    assert budget.spend(60, now=1000.0) and not budget.spend(60, now=1005.0)
    assert budget.spend(60, now=1011.0)  # the first 60 bytes' answer has expired


def test_a_correction_lands_in_postgresql_and_a_second_one_replaces_it(postgres_url):
    app = create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}",
                      "FEEDBACK_DB_URL": postgres_url})
    given = answer(pending.new_id(), digit=8)
    app.extensions["webui.pending"].add(given)
    client = app.test_client()
    first = client.post("/api/feedback", json={"prediction_id": given.prediction_id, "digit": 3})
    second = client.post("/api/feedback", json={"prediction_id": given.prediction_id, "digit": 5})
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] == second.get_json()["id"]
    row = app.extensions["webui.store"].get(given.prediction_id)
    assert (row.answer.digit, row.correction) == (8, 5)
