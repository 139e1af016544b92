"""Turn an encoded drawing or photo of a digit into MNIST form, in TensorFlow ops.

These ops are exported inside the SavedModel's `predict_image` signature, so the web UI, curl
and any other client get exactly the same normalisation. MNIST's own recipe: grayscale,
light ink on a dark background, crop to the ink, fit into 20x20 keeping the aspect ratio,
then place in 28x28 so that the centre of mass sits in the middle.
"""

from __future__ import annotations

import tensorflow as tf

from contract import IMAGE_SIZE, MIN_INK_CONTRAST

FIT_SIZE = 20
INK_THRESHOLD = 0.05  # fraction of full ink that counts as part of the digit when cropping
MIN_CONTRAST = float(MIN_INK_CONTRAST)  # below this (0-255) the image is taken as blank


# ITU-R 601 luma, the weights tf.image.rgb_to_grayscale uses (alpha weighs nothing).
_LUMA = (0.2989, 0.5870, 0.1140, 0.0)


def ink_plane(image: tf.Tensor) -> tf.Tensor:
    """The plane a uint8 [h, w, 1|2|3|4] image's ink is read from, float 0-255, ink light.

    Transparent images (a canvas without a background) take their ink from alpha. Opaque
    ones decide polarity from the border: a light border means dark ink, which is inverted.
    Gray is one matrix product of the pixels with the luma weights: the same numbers as
    tf.image.rgb_to_grayscale without its strided copy of the channels. Only the plane that
    is used gets computed: every full-size pass is a tenth of a millisecond on the page's path.
    """
    def gray(count: int) -> tf.Tensor:
        if count < 3:
            return tf.cast(image[..., 0], tf.float32)
        pixels = tf.reshape(tf.cast(image, tf.float32), [-1, count])
        luma = tf.matmul(pixels, tf.constant(_LUMA[:count], shape=[count, 1]))
        return tf.reshape(luma, tf.shape(image)[:2])

    def light_ink(plane: tf.Tensor) -> tf.Tensor:
        border = tf.concat([plane[0], plane[-1], plane[:, 0], plane[:, -1]], axis=0)
        return tf.cond(tf.reduce_mean(border) > 127.5, lambda: 255.0 - plane, lambda: plane)

    # One branch per channel count; each builds its ops inside itself, so only its own run.
    def opaque(count: int):
        return lambda: light_ink(gray(count))

    def with_alpha(count: int):
        def branch():
            alpha = image[..., -1]
            return tf.cond(tf.reduce_min(alpha) < 250,
                           lambda: tf.cast(alpha, tf.float32), opaque(count))
        return branch

    return tf.switch_case(tf.shape(image)[-1] - 1,
                          [opaque(1), with_alpha(2), opaque(3), with_alpha(4)])


def stretch(pixels: tf.Tensor, background: tf.Tensor, contrast: tf.Tensor) -> tf.Tensor:
    """Subtract the background level and stretch the contrast to 0-255."""
    return tf.clip_by_value((pixels - background) / tf.maximum(contrast, 1.0), 0.0, 1.0) * 255.0


def center_in_mnist_frame(plane: tf.Tensor) -> tf.Tensor:
    """Crop [h, w] ink to its bounding box, fit it in 20x20, centre its mass in 28x28.

    The border's mean is the background; an image whose ink stands less than MIN_CONTRAST
    above it is blank. The contrast is stretched on the crop alone: the bounding box needs
    only a comparison, which gives the same answer before the clip as after it.
    """
    border = tf.concat([plane[0], plane[-1], plane[:, 0], plane[:, -1]], axis=0)
    background = tf.reduce_mean(border)
    contrast = tf.reduce_max(plane) - background
    mask = plane > background + INK_THRESHOLD * tf.maximum(contrast, 1.0)
    rows = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask, axis=0))[:, 0]

    def place():
        top, bottom = tf.reduce_min(rows), tf.reduce_max(rows) + 1
        left, right = tf.reduce_min(cols), tf.reduce_max(cols) + 1
        crop = stretch(plane[top:bottom, left:right], background, contrast)
        height = tf.cast(bottom - top, tf.float32)
        width = tf.cast(right - left, tf.float32)
        scale = FIT_SIZE / tf.maximum(height, width)
        size = tf.cast(
            tf.maximum(tf.round(tf.stack([height, width]) * scale), 1.0), tf.int32
        )
        fitted = tf.image.resize(crop[..., None], size, method="bilinear", antialias=True)[..., 0]
        fitted = tf.clip_by_value(fitted, 0.0, 255.0)
        total = tf.reduce_sum(fitted)
        ys = tf.range(size[0], dtype=tf.float32)[:, None]
        xs = tf.range(size[1], dtype=tf.float32)[None, :]
        com_y = tf.reduce_sum(fitted * ys) / total
        com_x = tf.reduce_sum(fitted * xs) / total
        centre = IMAGE_SIZE / 2.0  # where MNIST itself puts the centre of mass (row, col 14)
        offset_y = tf.clip_by_value(
            tf.cast(tf.round(centre - com_y), tf.int32), 0, IMAGE_SIZE - size[0]
        )
        offset_x = tf.clip_by_value(
            tf.cast(tf.round(centre - com_x), tf.int32), 0, IMAGE_SIZE - size[1]
        )
        return tf.image.pad_to_bounding_box(
            fitted[..., None], offset_y, offset_x, IMAGE_SIZE, IMAGE_SIZE
        )[..., 0]

    return tf.cond(
        (contrast >= MIN_CONTRAST) & (tf.size(rows) > 0), place,
        lambda: tf.zeros([IMAGE_SIZE, IMAGE_SIZE], tf.float32)
    )


def normalize_encoded(encoded: tf.Tensor) -> tf.Tensor:
    """Decode one PNG/JPEG/GIF/BMP string into a float32 [28, 28] MNIST-style image."""
    image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
    return center_in_mnist_frame(ink_plane(image))


def normalize_batch(encoded: tf.Tensor) -> tf.Tensor:
    """Normalise a [None] string batch into float32 [None, 28, 28]."""
    return tf.map_fn(
        normalize_encoded,
        encoded,
        fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE], tf.float32),
    )
