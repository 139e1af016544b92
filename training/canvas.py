"""Measure a model on drawings, through its `predict_image` signature.

The PNGs go through the exported SavedModel exactly as the page's PNGs go through TF Serving,
so `canvas_accuracy` (the drawn-digit set) and `real_accuracy_*` (other people's handwriting,
training.real_writers) include the in-graph normalisation, not just the classifier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from contract import DIGIT_OUTPUT, IMAGE_INPUT, IMAGE_SIGNATURE, NORMALIZED_OUTPUT, NUM_CLASSES

BATCH = 250
CANVAS_METRIC = "canvas_accuracy"


class Drawings(Protocol):
    """What evaluate answers: training.drawn.DrawnDigits, training.real_writers.Drawings."""

    pngs: list[bytes]
    labels: np.ndarray


@dataclass(frozen=True)
class CanvasResult:
    metrics: dict[str, float]  # METRIC and METRIC_digit_N
    predicted: np.ndarray  # the digit answered for each drawing
    normalized: np.ndarray  # uint8 [n, 28, 28]: what the classifier saw


def _batched(fn: Callable, pngs: Sequence[bytes]) -> list:
    """fn over BATCH-sized slices on a thread per core: each decodes its images one by one,
    so a single call keeps one core busy."""
    import tensorflow as tf

    def one(start: int):
        return fn(tf.constant(pngs[start:start + BATCH], tf.string))

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(one, range(0, len(pngs), BATCH)))


def _as_uint8(images) -> np.ndarray:
    return np.clip(np.asarray(images), 0, 255).round().astype(np.uint8)


def normalize(pngs: Sequence[bytes]) -> np.ndarray:
    """uint8 [n, 28, 28]: what the served graph's classifier would see of each drawing."""
    import tensorflow as tf

    from training.preprocess import normalize_batch

    graph = tf.function(normalize_batch, input_signature=[tf.TensorSpec([None], tf.string)])
    parts = _batched(lambda batch: _as_uint8(graph(batch)), pngs)
    return np.concatenate(parts) if parts else np.zeros((0, 28, 28), np.uint8)


def evaluate(export_dir: str | Path, drawn: Drawings, metric: str = CANVAS_METRIC,
             signature=None) -> CanvasResult:
    """Answer every drawing with the SavedModel in export_dir; accuracy overall and per digit.

    signature: the loaded `predict_image`, to answer several sets with one load.
    """
    import tensorflow as tf

    if signature is None:
        signature = tf.saved_model.load(str(export_dir)).signatures[IMAGE_SIGNATURE]

    def answer(batch) -> tuple[np.ndarray, np.ndarray]:
        out = signature(**{IMAGE_INPUT: batch})
        return out[DIGIT_OUTPUT].numpy(), _as_uint8(out[NORMALIZED_OUTPUT].numpy())

    predicted, normalized = zip(*_batched(answer, drawn.pngs), strict=True)
    predicted = np.concatenate(predicted)
    right = predicted == drawn.labels
    metrics = {metric: float(right.mean())}
    for digit in range(NUM_CLASSES):
        mask = drawn.labels == digit
        if mask.any():
            metrics[f"{metric}_digit_{digit}"] = float(right[mask].mean())
    return CanvasResult(metrics, predicted, np.concatenate(normalized))


def evaluate_sets(export_dir: str | Path, sets: dict[str, Drawings]) -> dict[str, CanvasResult]:
    """{metric: result} for each {metric: drawings}, the SavedModel loaded once."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir)).signatures[IMAGE_SIGNATURE]
    return {metric: evaluate(export_dir, drawn, metric, signature)
            for metric, drawn in sets.items()}
