"""`python -m training feedback stats|export` through the CLI's own entry point."""

from __future__ import annotations

import json

import numpy as np

from corrections.store import FeedbackStore
from tests.unit.test_feedback_store import answer
from training import cli, feedback
from webui import pending


def fill(url: str) -> list[str]:
    store = FeedbackStore(url)
    ids = [pending.new_id() for _ in range(30)]
    for i, prediction_id in enumerate(ids):
        store.save(answer(prediction_id, digit=i % 10, version="1" if i < 20 else "2"),
                   None if i % 3 else (i + 1) % 10)
    return ids


def test_stats_json_has_the_contracts_keys(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/feedback.db"
    ids = fill(url)
    monkeypatch.setenv("FEEDBACK_DB_URL", url)
    assert cli.main(["feedback", "stats", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary)[:4] == ["total", "corrected", "by_digit", "by_version"]
    assert (summary["total"], summary["corrected"]) == (30, 10)
    assert summary["by_version"]["1"]["answered"] == 20
    assert summary["by_version"]["2"]["as_challenger"] == 30  # the helper: challenger v2 said 5
    assert summary["held_out"] == sum(map(feedback.is_held_out, ids))
    assert cli.main(["feedback", "stats"]) == 0
    assert "held out for evaluation" in capsys.readouterr().out


def test_export_npz_keeps_the_shares_apart(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/feedback.db"
    ids = fill(url)
    monkeypatch.setenv("FEEDBACK_DB_URL", url)
    assert cli.main(["feedback", "export", "--format", "npz", "--out", str(tmp_path / "x")]) == 0
    with np.load(tmp_path / "x" / "feedback.npz") as data:
        assert set(data["ids_holdout"]) == {i for i in ids if feedback.is_held_out(i)}
        assert data["x_train"].shape == (30 - len(data["ids_holdout"]), 28, 28)


def test_no_store_yet_is_a_plain_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEEDBACK_DB_URL", f"sqlite:///{tmp_path}/none.db")
    assert cli.main(["feedback", "stats"]) == 2
    assert "correct a few answers on the page first" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_the_held_out_share_is_a_fixed_fifth_by_hash():
    ids = [pending.new_id() for _ in range(5000)]
    share = sum(map(feedback.is_held_out, ids)) / len(ids)
    assert 0.18 < share < 0.22
    assert [feedback.is_held_out(i) for i in ids[:50]] == [feedback.is_held_out(i)
                                                           for i in ids[:50]]
    # Pinned: a change to the hash would move rows between training and evaluation.
    assert [feedback.is_held_out(f"p19b2c1d3e4f-0123456789abcde{c}") for c in "0123"] == [
        False, True, True, False]
