"""The proving ground (bench/feedback_loop.py --writers semeion) corrects the page as a person
would, through the real web UI's HTTP endpoints: what it stores is what `retrain` learns from.
"""

from __future__ import annotations

import pytest
import requests

from bench.feedback_loop import correct_through_page
from corrections.store import FeedbackStore
from tests.support.images import canvas_png
from tests.support.servers import local_webui

pytestmark = pytest.mark.integration


def test_the_proving_ground_corrects_through_the_page(serving_url, stack, mnist, tmp_path):
    db = f"sqlite:///{tmp_path}/feedback.db"
    pngs = [canvas_png(pixels) for pixels in mnist.x_test[:40]]
    labels = mnist.y_test[:40].copy()
    labels[::4] = (labels[::4] + 1) % 10  # these drawings "are" another digit: always wrong
    with local_webui(serving_url, FEEDBACK_DB_URL=db) as url:
        right = correct_through_page(url, pngs, labels, requests.Session())
    rows = list(FeedbackStore(db).corrections(with_png=True))
    assert len(rows) == 40 and right <= 30
    assert sum(row.correction is None for row in rows) == right  # null: the page was right
    for row, png, label in zip(rows, pngs, labels, strict=True):
        assert row.answer.png == png and row.label == label  # stored as the page received it
        assert row.answer.model_version == str(stack.version)
        assert (row.correction is None) == (row.answer.digit == label)
