"""predict_image's in-graph normalisation: polarity, placement, size, blank images."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.support.images import png
from training import preprocess

CANVAS = 280


def normalize(*encoded: bytes) -> np.ndarray:
    return preprocess.normalize_batch(tf.constant(list(encoded))).numpy()


def drawn(digit: np.ndarray, size: int, top: int, left: int) -> bytes:
    """An MNIST digit drawn dark-on-light, `size` px tall, at (top, left) on a white canvas."""
    canvas = np.full((CANVAS, CANVAS), 255, np.uint8)
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR))
    canvas[top:top + size, left:left + size] = 255 - ink
    return png(canvas)


def test_mnist_digits_pass_through_almost_unchanged(mnist):
    out = normalize(*(png(x) for x in mnist.x_test[:50]))
    assert np.abs(out - mnist.x_test[:50]).mean() < 0.5


def test_polarity_dark_on_light_equals_light_on_dark(mnist):
    digit = mnist.x_test[0]
    light_on_dark, dark_on_light = normalize(png(digit), png(255 - digit))
    np.testing.assert_allclose(light_on_dark, dark_on_light, atol=1.0)


def test_transparent_canvas_takes_ink_from_alpha(mnist):
    digit = mnist.x_test[1]
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = digit  # black strokes on a transparent background
    out, reference = normalize(png(rgba, "RGBA"), png(digit))
    np.testing.assert_allclose(out, reference, atol=1.0)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_place_and_size_do_not_matter(mnist, index):
    """The same digit drawn small in a corner and large in the middle normalises alike."""
    digit = mnist.x_test[index]
    variants = normalize(drawn(digit, 90, 10, 20), drawn(digit, 200, 40, 40),
                         drawn(digit, 140, 130, 120))
    for other in variants[1:]:
        assert np.abs(other - variants[0]).mean() < 12  # out of 255
    centre = np.array([14, 14])
    for out in variants:
        ys, xs = np.indices(out.shape)
        com = np.array([(out * ys).sum(), (out * xs).sum()]) / out.sum()
        assert np.abs(com - centre).max() <= 0.75


@pytest.mark.parametrize("fill", [0, 255, 128])
def test_blank_images_normalise_to_zeros(fill):
    out = normalize(png(np.full((64, 64), fill, np.uint8)))
    assert out.shape == (1, 28, 28) and not out.any()


def test_other_formats_decode_alike(mnist):
    digit = 255 - np.asarray(Image.fromarray(mnist.x_test[2]).resize((140, 140)))
    encoded = []
    for fmt in ["PNG", "JPEG", "GIF", "BMP"]:
        buffer = io.BytesIO()
        Image.fromarray(digit).convert("RGB").save(buffer, format=fmt)
        encoded.append(buffer.getvalue())
    outs = normalize(*encoded)
    for out in outs[1:]:
        assert np.abs(out - outs[0]).mean() < 6
