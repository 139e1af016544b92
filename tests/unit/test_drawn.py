"""The drawn-digit test set: deterministic, on the canvas, from test digits only, verified."""

import hashlib
import io
import os

import numpy as np
import pytest
from PIL import Image

from contract import CANVAS_EXPORT_SIDE
from training import drawn


@pytest.fixture(scope="module")
def small(mnist):
    return drawn.generate(mnist.x_test, mnist.y_test, seed=3, per_digit=4)


def test_same_seed_same_digest_other_seed_other_digest(mnist, small):
    again = drawn.generate(mnist.x_test, mnist.y_test, seed=3, per_digit=4)
    other = drawn.generate(mnist.x_test, mnist.y_test, seed=4, per_digit=4)
    assert again.digest == small.digest and again.pngs == small.pngs
    assert other.digest != small.digest


def test_labels_are_the_test_digits_labels_and_every_digit_is_there(mnist, small):
    np.testing.assert_array_equal(small.labels, mnist.y_test[small.source_index])
    assert np.bincount(small.labels, minlength=10).tolist() == [4] * 10


def test_no_training_image_is_drawn(mnist, small):
    """Checked, not assumed: no source digit is pixel-for-pixel any training image."""
    def fingerprint(image):
        return hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()

    training = {fingerprint(image) for image in mnist.x_train}
    assert not any(fingerprint(mnist.x_test[i]) in training for i in small.source_index)


def test_pngs_are_the_pages_canvas_dark_ink_on_white(small):
    for png in small.pngs[:5]:
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (CANVAS_EXPORT_SIDE,) * 2
        gray = np.asarray(image.convert("L"))
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        assert gray.min() == 0 and (border == 255).all()


@pytest.mark.parametrize("index", range(30))
def test_every_stroke_stays_on_the_canvas_pen_included(mnist, index):
    rng = np.random.default_rng(index)
    strokes, style = drawn.draw_digit(mnist.x_test[index], rng)
    points = np.vstack(strokes)
    margin = style.pen / 2 + drawn.EDGE_MARGIN
    assert points.min() >= margin - 1e-9 and points.max() <= 1 - margin + 1e-9


def test_strokes_retrace_the_digit_in_order():
    """An L drawn in one line gives one ordered stroke from one end to the other."""
    image = np.zeros((28, 28), np.uint8)
    image[4:22, 8:11] = 255
    image[19:22, 8:20] = 255
    (stroke,) = drawn.strokes_of(image)
    ends = sorted([tuple(np.round(stroke[0])), tuple(np.round(stroke[-1]))])
    assert abs(ends[0][1] - 5) <= 2 and abs(ends[1][0] - 19) <= 2  # top of the bar, foot's end
    steps = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    assert steps.max() < 12  # consecutive points along the pen's path, not a scatter


def test_load_writes_once_then_verifies(mnist, tmp_path):
    first = drawn.load(mnist, tmp_path, seed=1, per_digit=2)
    stamp = os.stat(first.path).st_mtime_ns
    second = drawn.load(mnist, tmp_path, seed=1, per_digit=2)
    assert second.digest == first.digest and os.stat(second.path).st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_a_damaged_file_is_drawn_again(mnist, tmp_path, capsys):
    first = drawn.load(mnist, tmp_path, seed=1, per_digit=2)
    with np.load(first.path) as f:
        arrays = dict(f)
    arrays["labels"] = (arrays["labels"] + 1) % 10
    np.savez(first.path, **arrays)
    again = drawn.load(mnist, tmp_path, seed=1, per_digit=2)
    assert "does not match its digest" in capsys.readouterr().out
    assert again.digest == first.digest
    np.testing.assert_array_equal(again.labels, first.labels)


def _ring(filled: bool) -> np.ndarray:
    """A 0 drawn as a ring, or blotted into a disc."""
    yy, xx = np.mgrid[:28, :28]
    radius = np.hypot(yy - 14, xx - 14)
    ink = radius < 9 if filled else (radius > 5.5) & (radius < 9)
    return np.where(ink, 255, 0).astype(np.uint8)


def test_a_loop_is_retraced_and_a_blotted_one_is_passed_over():
    ring, disc = _ring(filled=False), _ring(filled=True)
    assert drawn.retraces(ring, drawn.strokes_of(ring))
    assert not drawn.retraces(disc, drawn.strokes_of(disc))

