"""Measure a model on the drawn-digit set, through its `predict_image` signature.

The PNGs go through the exported SavedModel exactly as the page's PNGs go through TF Serving,
so `canvas_accuracy` includes the in-graph normalisation, not just the classifier.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import DIGIT_OUTPUT, IMAGE_INPUT, IMAGE_SIGNATURE, NORMALIZED_OUTPUT, NUM_CLASSES
from training.drawn import DrawnDigits

BATCH = 250


@dataclass(frozen=True)
class CanvasResult:
    metrics: dict[str, float]  # canvas_accuracy and canvas_accuracy_digit_N
    predicted: np.ndarray  # the digit answered for each drawing
    normalized: np.ndarray  # uint8 [n, 28, 28]: what the classifier saw


def evaluate(export_dir: str | Path, drawn: DrawnDigits) -> CanvasResult:
    """Answer every drawing with the SavedModel in export_dir; accuracy overall and per digit.

    Batches go through the signature on a thread per core: each decodes its images one by one,
    so a single call keeps one core busy.
    """
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir)).signatures[IMAGE_SIGNATURE]

    def answer(start: int) -> tuple[np.ndarray, np.ndarray]:
        out = signature(**{IMAGE_INPUT: tf.constant(drawn.pngs[start:start + BATCH], tf.string)})
        return (out[DIGIT_OUTPUT].numpy(),
                np.clip(out[NORMALIZED_OUTPUT].numpy(), 0, 255).astype(np.uint8))

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        predicted, normalized = zip(*pool.map(answer, range(0, len(drawn), BATCH)), strict=True)
    predicted = np.concatenate(predicted)
    right = predicted == drawn.labels
    metrics = {"canvas_accuracy": float(right.mean())}
    for digit in range(NUM_CLASSES):
        mask = drawn.labels == digit
        if mask.any():
            metrics[f"canvas_accuracy_digit_{digit}"] = float(right[mask].mean())
    return CanvasResult(metrics, predicted, np.concatenate(normalized))
