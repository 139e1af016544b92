"""The published model itself: both signatures agree, and behave as a person would expect."""

import numpy as np
import pytest
import tensorflow as tf

from contract import IMAGE_SIGNATURE, SERVING_SIGNATURE
from tests.support.images import png

pytestmark = pytest.mark.integration
SAMPLE = 2000


@pytest.fixture(scope="module")
def signatures(stack):
    loaded = tf.saved_model.load(str(stack.base_path / str(stack.version)))
    return loaded.signatures[SERVING_SIGNATURE], loaded.signatures[IMAGE_SIGNATURE]


def predict_images(image_signature, arrays) -> dict[str, np.ndarray]:
    out = image_signature(image=tf.constant([png(a) for a in arrays]))
    return {k: v.numpy() for k, v in out.items()}


def test_png_path_loses_at_most_0_3_points(signatures, mnist):
    pixels_signature, image_signature = signatures
    x, y = mnist.x_test[:SAMPLE], mnist.y_test[:SAMPLE]
    direct = pixels_signature(pixels=tf.constant(x, tf.float32))["digit"].numpy()
    via_png = predict_images(image_signature, x)["digit"]
    direct_accuracy, png_accuracy = (direct == y).mean(), (via_png == y).mean()
    assert direct_accuracy >= 0.95
    assert direct_accuracy - png_accuracy <= 0.003


def test_outputs_are_probabilities_and_their_argmax(signatures, mnist):
    pixels_signature, _ = signatures
    out = pixels_signature(pixels=tf.constant(mnist.x_test[:32], tf.float32))
    probabilities, digit = out["probabilities"].numpy(), out["digit"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), digit)


@pytest.mark.parametrize("dy, dx", [(0, 1), (1, 0), (-1, 0), (0, -1)])
def test_one_pixel_shift_keeps_the_label(signatures, mnist, dy, dx):
    pixels_signature, _ = signatures
    x = mnist.x_test[:200]
    shifted = np.roll(x, (dy, dx), axis=(1, 2))
    original, moved = (pixels_signature(pixels=tf.constant(a, tf.float32))["digit"].numpy()
                       for a in (x, shifted))
    assert (original == moved).mean() >= 0.97


def test_blank_canvas_shows_the_classifier_nothing(signatures):
    """A model is confident about any input, blanks included: the web UI refuses empty drawings."""
    _, image_signature = signatures
    out = predict_images(image_signature, [np.full((280, 280), 255)])
    assert not out["normalized"].any()
    np.testing.assert_allclose(out["probabilities"].sum(), 1.0, atol=1e-5)
