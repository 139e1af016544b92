"""The Keras architectures `--model` can pick; each takes MNIST pixels (0-255) named `pixels`."""

from __future__ import annotations

import keras
from keras import layers

from contract import IMAGE_SIZE, NUM_CLASSES, PIXELS_INPUT, PROBABILITIES_OUTPUT


def _inputs(augment: bool) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The named `pixels` input, scaled to 0-1, with random shifts, turns and zooms if augment.

    The augmentation layers only act in training; the exported model passes images through.
    """
    pixels = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name=PIXELS_INPUT, dtype="float32")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(pixels)
    x = layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="add_channel")(x)
    if augment:
        for layer in augment_layers():
            x = layer(x)
    return pixels, x


def augment_layers(seed: int | None = None) -> list[layers.Layer]:
    """Random turns, zooms and shifts of [n, 28, 28, 1] images, active only in training.

    The model's own augmentation, and what the page's corrections get in every profile
    (training.feedback).
    """
    return [layers.RandomRotation(0.03, fill_mode="constant", seed=seed, name="augment_rotate"),
            layers.RandomZoom(0.1, fill_mode="constant", seed=seed, name="augment_zoom"),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed,
                                     name="augment_shift")]


def convnet(width: int = 32, augment: bool = False) -> keras.Model:
    """Small and fast: two conv blocks and dropout, the classic Keras MNIST example's shape."""
    pixels, x = _inputs(augment)
    x = layers.Conv2D(width, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * width, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name=PROBABILITIES_OUTPUT)(x)
    return keras.Model(pixels, probabilities, name="convnet")


def _conv_bn(x, filters: int, kernel: int = 3, padding: str = "same"):
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False)(x)
    # Early activations are tiny (variance ~0.003) next to the default initial moving
    # variance of 1, which then dominates inference for hundreds of steps. Starting from 0
    # with momentum 0.9, the moving statistics are right within a few dozen steps.
    x = layers.BatchNormalization(momentum=0.9, moving_variance_initializer="zeros")(x)
    return layers.Activation("relu")(x)


def vgg(width: int = 32, augment: bool = True) -> keras.Model:
    """Stronger default: VGG-style batch-norm blocks, global pooling, dropout.

    The full-resolution block has one conv, not two: at 28x28 a second one costs a third of
    the training time, which buys more epochs of the 14x14 block instead (a better trade on CPU).
    """
    pixels, x = _inputs(augment)
    x = _conv_bn(x, width)
    x = layers.MaxPooling2D()(x)
    x = _conv_bn(x, 2 * width)
    x = _conv_bn(x, 2 * width)
    x = layers.MaxPooling2D()(x)
    x = _conv_bn(x, 4 * width, padding="valid")
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name=PROBABILITIES_OUTPUT)(x)
    return keras.Model(pixels, probabilities, name="vgg")


ARCHITECTURES = {"convnet": convnet, "vgg": vgg}  # training.profiles.ARCHITECTURE_NAMES


def build(name: str, width: int = 32, augment: bool = False) -> keras.Model:
    """Build an architecture by name; `width` is its first layer's filter count."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](width=width, augment=augment)
