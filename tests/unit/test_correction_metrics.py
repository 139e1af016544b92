"""/metrics counts each judged answer as right or wrong, for the champion and the challenger:
the series behind the correction-rate alert and the dashboard's side-by-side panel."""

from __future__ import annotations

from tests.support.servers import free_port
from tests.unit.test_feedback_store import answer
from webui import create_app, pending


def test_a_correction_judges_the_champion_and_the_challenger_that_answered_beside_it(tmp_path):
    app = create_app({"TF_SERVING_URL": f"http://127.0.0.1:{free_port()}",
                      "FEEDBACK_DB_URL": f"sqlite:///{tmp_path}/feedback.db"})
    client = app.test_client()
    for truth in (3, 5, 7, None):  # the champion said 3, the challenger 5; None: "right"
        given = answer(pending.new_id(), digit=3)
        app.extensions["webui.pending"].add(given)
        response = client.post("/api/feedback",
                               json={"prediction_id": given.prediction_id, "digit": truth})
        assert response.status_code == 201, response.get_json()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'webui_feedback_total{verdict="right",version="1"} 2.0' in metrics
    assert 'webui_feedback_total{verdict="wrong",version="1"} 2.0' in metrics
    labels = 'challenger_version="2",verdict="{}",version="1"'
    assert f"webui_challenger_feedback_total{{{labels.format('right')}}} 1.0" in metrics
    assert f"webui_challenger_feedback_total{{{labels.format('wrong')}}} 3.0" in metrics
