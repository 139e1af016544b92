"""Figures logged with every run: confusion matrix, misclassified digits, learning curves.

Built on matplotlib's object API (no pyplot state), so training in a thread is safe.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from contract import NUM_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts [true, predicted]."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def confusion_figure(matrix: np.ndarray) -> Figure:
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.add_subplot()
    # Log scale, so the rare mistakes are visible beside the diagonal's thousands.
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if i == j else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    ax.set(xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES), xlabel="predicted",
           ylabel="true", title="Confusion matrix (test set)")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig


def misclassified_figure(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                         limit: int = 36, title: str = "Misclassified test digits",
                         sources: np.ndarray | None = None) -> Figure:
    """A grid of the first `limit` wrong digits, titled true/predicted.

    sources: for redrawn digits, the image each was drawn from, shown on its left (scaled to
    the images' height): whether the mistake is the model's or the drawing's is then plain.
    """
    wrong = np.flatnonzero(y_true != y_pred)
    shown = wrong[:limit]
    pictures = images[shown]
    if sources is not None:
        sources = _scaled(sources[shown], images.shape[1])
        gap = np.full((len(shown), images.shape[1], 2), 128, images.dtype)
        pictures = np.concatenate([sources, gap, pictures], axis=2)
    cols = 6
    rows = max(1, -(-len(shown) // cols))
    aspect = pictures.shape[2] / pictures.shape[1]
    fig = Figure(figsize=(cols * 1.3 * aspect, rows * 1.5), layout="constrained")
    fig.suptitle(f"{title} ({len(wrong)} in all)")
    for k, (index, picture) in enumerate(zip(shown, pictures, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(picture, cmap="gray")
        ax.set_title(f"true {y_true[index]} / pred {y_pred[index]}", fontsize=8)
        ax.axis("off")
    return fig


def _scaled(images: np.ndarray, side: int) -> np.ndarray:
    """Square images scaled to side x side (bilinear), for showing beside others."""
    if images.shape[1] == side:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(image).resize((side, side),
                                                              Image.Resampling.BILINEAR))
                     for image in images] or [np.zeros((side, side), images.dtype)])[:len(images)]


def learning_curves_figure(history: dict[str, list[float]]) -> Figure:
    fig = Figure(figsize=(10, 4), layout="constrained")
    epochs = range(1, len(history["loss"]) + 1)
    for position, metric in enumerate(["loss", "accuracy"], start=1):
        ax = fig.add_subplot(1, 2, position)
        ax.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.legend()
        ax.grid(alpha=0.3)
    return fig
