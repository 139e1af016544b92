"""Redrawn training digits look like the page's drawings, framed as predict_image frames them."""

import numpy as np
import pytest

from training import augment


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "refined"])
def pairs(mnist, request):
    originals = mnist.x_train[:300]
    return originals, augment.restroke(originals, seed=0, refine=request.param)


def _box(image, level=0.05 * 255):
    rows, cols = np.nonzero(image > level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_same_seed_same_drawings(mnist):
    originals = mnist.x_train[:300]
    for refine in (False, True):
        redrawn = augment.restroke(originals, seed=0, refine=refine)
        np.testing.assert_array_equal(augment.restroke(originals, seed=0, refine=refine), redrawn)
        assert not np.array_equal(augment.restroke(originals, seed=1, refine=refine), redrawn)
    assert not np.array_equal(augment.restroke(originals, seed=0, refine=True),
                              augment.restroke(originals, seed=0))


def test_each_digit_fills_the_20_pixel_box_with_its_centre_of_mass_in_the_middle(pairs):
    """As predict_image frames a drawing: a lopsided wide digit's box moves only to the edge."""
    _, redrawn = pairs
    assert redrawn.dtype == np.uint8 and redrawn.shape == (300, 28, 28)
    for image in redrawn:
        assert 18 <= max(_box(image)) <= 22
        weights = image.astype(float)
        centre = np.arange(28) + 0.5
        com = ((weights.sum(1) * centre).sum(), (weights.sum(0) * centre).sum())
        at_edge = image[[0, -1]].any() or image[:, [0, -1]].any()
        assert at_edge or np.allclose(np.array(com) / weights.sum(), 14, atol=1.0)


def test_pens_of_many_widths(pairs):
    """The ink per pixel of skeleton varies: thin and thick pens, as big and small drawings."""
    _, redrawn = pairs
    ink = (redrawn / 255.0).sum(axis=(1, 2))
    assert ink.max() > 2.2 * ink.min()


def test_a_redrawn_digit_still_reads_as_its_digit(mnist, pairs):
    """Nearest class centroid of MNIST itself reads most redrawings as their own digit.

    The centroids are MNIST's own proportions, so the redraws' wide and thin hands cost it
    about a quarter of the originals' score (0.80 -> 0.55 refined)."""
    originals, redrawn = pairs
    x, y = mnist.x_train[1000:6000].reshape(5000, -1) / 255.0, mnist.y_train[1000:6000]
    centroids = np.stack([x[y == d].mean(axis=0) for d in range(10)])

    def read(images):
        flat = images.reshape(len(images), -1) / 255.0
        return np.argmin(((flat[:, None] - centroids[None]) ** 2).sum(-1), axis=1)

    labels = mnist.y_train[:300]
    on_originals = (read(originals) == labels).mean()
    on_redrawn = (read(redrawn) == labels).mean()
    assert on_redrawn > 0.5 and on_redrawn > on_originals - 0.3


def _line(rows=range(4, 24), col=14):
    skeleton = np.zeros((1, 28, 28), bool)
    skeleton[0, list(rows), col] = True
    return skeleton


def test_thinning_spurs_are_pruned_and_stroke_ends_kept():
    skeleton = _line()
    spur, branch = skeleton.copy(), skeleton.copy()
    spur[0, 12, 15:17] = True  # two pixels off the stroke: a thinning artefact
    branch[0, 12, 15:20] = True  # five: a stroke of its own
    np.testing.assert_array_equal(augment._prune(spur), skeleton)
    np.testing.assert_array_equal(augment._prune(branch), branch)


def test_smoothing_straightens_the_pixel_staircase():
    skeleton = np.zeros((1, 28, 28), bool)
    for step in range(10):  # a line of slope 1/2 drawn as a 4-connected staircase
        skeleton[0, 4 + step, 4 + 2 * step:6 + 2 * step] = True
    rows, cols = augment._smoothed(skeleton)
    on = np.nonzero(skeleton[0])
    inner = (on[1] > 5) & (on[1] < 22)  # the two ends move inwards, not off the line

    def off_line(r, c):
        return np.abs(r - 4 - (c - 4.5) / 2)[inner].max()

    assert off_line(rows[0][on], cols[0][on]) < 0.5 * off_line(*on)


def test_overshoot_carries_stroke_ends_straight_on(monkeypatch):
    monkeypatch.setattr(augment, "OVERSHOOT", 3.0)  # the bounds below use it
    skeleton = _line()
    rows, cols = augment._smoothed(skeleton)
    digit, y, x = augment._overshoot(skeleton, rows, cols, np.random.default_rng(0))
    assert (digit == 0).all() and len(y) == 10  # five points past each of the two ends
    np.testing.assert_allclose(x, 14, atol=1e-6)
    above, below = y[y < 10], y[y > 10]
    assert len(above) == len(below) == 5
    assert above.min() >= rows[0, 4, 14] - 3.0 and below.max() <= rows[0, 23, 14] + 3.0
    assert above.max() < rows[0, 4, 14] and below.min() > rows[0, 23, 14]


def _stems(labels):
    """A vertical stroke (x 14, y 4..23) for each label, as skeleton points sorted by digit."""
    ys = np.arange(4.0, 24.0)
    digit = np.repeat(np.arange(len(labels)), len(ys))
    xy = np.stack([np.full(len(digit), 14.0), np.tile(ys, len(labels))], axis=1)
    return digit, xy.astype(np.float32), np.asarray(labels)


def _added(labels, monkeypatch, share=1.0):
    monkeypatch.setattr(augment, "CONVENTION_SHARE", share)
    digit, xy, labels = _stems(labels)
    new_digit, new_xy = augment.conventions(digit, xy, labels, np.random.default_rng(0))
    assert (np.diff(new_digit) >= 0).all()  # still sorted by digit, as the bend expects
    return [new_xy[new_digit == d][20:] for d in range(len(labels))]  # each one's new points


def test_a_flagged_1_gains_an_upstroke_from_its_top_down_to_the_left(monkeypatch):
    for flag in _added([1] * 20, monkeypatch):
        upstroke = flag[flag[:, 1] < 14]
        assert len(upstroke) > 5 and (upstroke[:, 0] <= 14).all()
        assert upstroke[:, 0].min() < 14 - 4 and upstroke[:, 1].min() >= 4 - 1e-3


def test_a_crossed_7_gains_a_bar_across_its_stem_below_the_middle(monkeypatch):
    for bar in _added([7] * 20, monkeypatch):
        assert bar[:, 0].min() < 14 - 2 and bar[:, 0].max() > 14 + 2
        assert 12 < bar[:, 1].mean() < 18 and np.ptp(bar[:, 1]) < 3


def test_a_curled_9_gains_a_tail_below_its_end_turning_left(monkeypatch):
    for tail in _added([9] * 20, monkeypatch):
        assert tail[:, 1].max() > 23 + 2 and tail[:, 0].min() < 14 - 2
        assert (tail[:, 0] <= 14 + 1e-3).all() and (tail[:, 1] >= 23 - 1e-3).all()


def test_other_digits_and_the_rest_of_the_share_stay_as_written(monkeypatch):
    assert all(len(new) == 0 for new in _added([0, 2, 3, 4, 5, 6, 8], monkeypatch))
    changed = [len(new) > 0 for new in _added([1, 7, 9] * 400, monkeypatch, share=0.3)]
    assert 0.25 < np.mean(changed) < 0.35


def test_restroke_draws_the_added_strokes(monkeypatch):
    """Redrawn with labels, a 7 written as a plain stem comes out with ink across its middle."""
    monkeypatch.setattr(augment, "CONVENTION_SHARE", 1.0)
    stems = np.zeros((50, 28, 28), np.uint8)
    stems[:, 4:24, 13:15] = 255
    plain = augment.restroke(stems, seed=0, labels=np.zeros(50, int))
    crossed = augment.restroke(stems, seed=0, labels=np.full(50, 7))

    def widest(images):
        return np.mean([np.ptp(np.nonzero(image[10:18] > 128)[1]) for image in images])

    assert widest(crossed) > widest(plain) + 3
