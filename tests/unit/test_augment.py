"""Redrawn training digits look like the page's drawings, framed as predict_image frames them."""

import numpy as np
import pytest

from training import augment


@pytest.fixture(scope="module")
def pairs(mnist):
    originals = mnist.x_train[:300]
    return originals, augment.restroke(originals, seed=0)


def _box(image, level=0.05 * 255):
    rows, cols = np.nonzero(image > level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_same_seed_same_drawings(mnist, pairs):
    originals, redrawn = pairs
    np.testing.assert_array_equal(augment.restroke(originals, seed=0), redrawn)
    assert not np.array_equal(augment.restroke(originals, seed=1), redrawn)


def test_each_digit_fills_the_20_pixel_box_with_its_centre_of_mass_in_the_middle(pairs):
    _, redrawn = pairs
    assert redrawn.dtype == np.uint8 and redrawn.shape == (300, 28, 28)
    for image in redrawn:
        assert 18 <= max(_box(image)) <= 22
        weights = image.astype(float)
        centre = np.arange(28) + 0.5
        com = ((weights.sum(1) * centre).sum(), (weights.sum(0) * centre).sum())
        assert np.allclose(np.array(com) / weights.sum(), 14, atol=1.0)


def test_pens_of_many_widths(pairs):
    """The ink per pixel of skeleton varies: thin and thick pens, as big and small drawings."""
    _, redrawn = pairs
    ink = (redrawn / 255.0).sum(axis=(1, 2))
    assert ink.max() > 2.2 * ink.min()


def test_a_redrawn_digit_still_reads_as_its_digit(mnist, pairs):
    """Nearest class centroid of MNIST itself reads most redrawings as their own digit."""
    originals, redrawn = pairs
    x, y = mnist.x_train[1000:6000].reshape(5000, -1) / 255.0, mnist.y_train[1000:6000]
    centroids = np.stack([x[y == d].mean(axis=0) for d in range(10)])

    def read(images):
        flat = images.reshape(len(images), -1) / 255.0
        return np.argmin(((flat[:, None] - centroids[None]) ** 2).sum(-1), axis=1)

    labels = mnist.y_train[:300]
    on_originals = (read(originals) == labels).mean()
    on_redrawn = (read(redrawn) == labels).mean()
    assert on_redrawn > 0.55 and on_redrawn > on_originals - 0.25
