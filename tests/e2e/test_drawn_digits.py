"""The drawn-digit test set draws as the page draws: the same strokes, the same 28x28.

Playwright draws a few of the set's strokes on the real page with the mouse; the 28x28 the
model saw for the page's PNG must match what `predict_image` makes of the set's own PNG of
the same strokes (both rasterise a round pen; they differ only in antialiasing).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests

from contract import IMAGE_SIGNATURE, PEN_WIDTH
from training import drawn

pytestmark = pytest.mark.e2e

SOURCES = (0, 1, 2)  # MNIST test digits 7, 2 and 1


def served_normalized(serving_url: str, png: bytes) -> np.ndarray:
    body = {"signature_name": IMAGE_SIGNATURE,
            "instances": [{"image": {"b64": base64.b64encode(png).decode()}}]}
    answer = requests.post(f"{serving_url}/v1/models/mnist/labels/stable:predict", json=body,
                           timeout=30)
    answer.raise_for_status()
    return np.asarray(answer.json()["predictions"][0]["normalized"])


@pytest.mark.parametrize("index", SOURCES)
def test_the_page_and_the_set_draw_the_same_digit(ui, serving_url, mnist, index):
    strokes, _ = drawn.draw_digit(mnist.x_test[index], np.random.default_rng(index))
    ours = served_normalized(serving_url, drawn.render(strokes, PEN_WIDTH))

    with ui.page.expect_response(lambda r: r.url.endswith("/api/predict")) as answer:
        ui.draw([[tuple(point) for point in stroke] for stroke in strokes], steps=1)
        ui.locator("#predict").click()
    page = np.asarray(answer.value.json()["normalized"])

    assert page.shape == ours.shape == (28, 28)
    assert np.abs(page - ours).mean() < 12, np.abs(page - ours).mean()  # of 255
    assert np.corrcoef(page.ravel(), ours.ravel())[0, 1] > 0.95
