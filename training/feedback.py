"""Corrections people made on the page, as data: stats, export, training and a held-out share.

    python -m training feedback stats [--json]
    python -m training feedback export --format idx --out feedback-export
    python -m training train --feedback

Each stored row is what the server answered (its 28x28, from the same `predict_image` graph
that serves) and the true digit. A fixed share is held out by hashing the prediction id, so a
row is either always trained on or never, on every run; `feedback_accuracy` is measured there.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corrections.store import Correction, FeedbackStore, StoreUnavailable
from training.config import Settings
from training.profiles import DEFAULT_FEEDBACK_WEIGHT

log = logging.getLogger(__name__)

HOLDOUT_PERCENT = 20  # of the corrections, never trained on
MIN_HOLDOUT_FOR_GATE = 200  # fewer held-out corrections say too little to refuse a version
CORRECTION_REDRAW = 0.5  # share of a correction's copies shown redrawn with another pen


class FeedbackError(RuntimeError):
    """The feedback store cannot be read, with what to do about it."""


def is_held_out(prediction_id: str) -> bool:
    """Whether a row belongs to the held-out share: stable for an id, whatever else is stored."""
    digest = hashlib.sha256(prediction_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < HOLDOUT_PERCENT


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # uint8 [N, 28, 28], MNIST convention, what the served model saw
    y: np.ndarray  # uint8 [N], the true digit
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FeedbackSet:
    source: str  # where the store is (no password)
    train: Split
    holdout: Split


def open_store(settings: Settings, must_exist: bool = True) -> FeedbackStore | None:
    """The store at settings.feedback_db_url; None for a SQLite file not made yet, if allowed."""
    store = FeedbackStore(settings.feedback_db_url)
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        if must_exist:
            raise FeedbackError(f"There is no feedback store at {store.where()} yet: correct a "
                                "few answers on the page first (or set FEEDBACK_DB_URL).")
        return None
    return store


def load(store: FeedbackStore) -> FeedbackSet:
    """Every correction, split into the training share and the held-out share."""
    rows = read_rows(store)
    held = [is_held_out(r.answer.prediction_id) for r in rows]
    return FeedbackSet(store.where(),
                       _split([r for r, h in zip(rows, held, strict=True) if not h]),
                       _split([r for r, h in zip(rows, held, strict=True) if h]))


def read_rows(store: FeedbackStore) -> list[Correction]:
    """Every stored row, oldest first; FeedbackError when the store cannot be read."""
    try:
        return list(store.corrections())
    except StoreUnavailable as e:
        raise FeedbackError(f"The feedback store at {store.where()} cannot be read ({e}). "
                            "Check FEEDBACK_DB_URL and that its database is running.") from e


def _split(rows: list[Correction]) -> Split:
    x = np.array([np.frombuffer(r.answer.normalized, np.uint8).reshape(28, 28) for r in rows],
                 dtype=np.uint8).reshape(-1, 28, 28)
    y = np.array([r.label for r in rows], dtype=np.uint8)
    return Split(x, y, tuple(r.answer.prediction_id for r in rows))


def stats(store: FeedbackStore) -> dict:
    """Totals, per true digit, and per model version: how often each was right."""
    rows = read_rows(store)
    by_digit: dict[int, Counter] = {}
    by_version: dict[str, Counter] = {}
    for row in rows:
        digit = by_digit.setdefault(row.label, Counter())
        digit["total"] += 1
        digit["right"] += row.answer.digit == row.label
        answers = [(row.answer.model_version, row.answer.digit, "answered")]
        if row.answer.challenger_digit is not None:
            answers.append((row.answer.challenger_version, row.answer.challenger_digit,
                            "as_challenger"))
        for version, said, role in answers:
            counts = by_version.setdefault(version, Counter())
            counts[role] += 1
            counts["right"] += said == row.label
    return {
        "total": len(rows),
        "corrected": sum(r.label != r.answer.digit for r in rows),
        "by_digit": {str(d): _rate(c, "total") for d, c in sorted(by_digit.items())},
        "by_version": {v: _rate(c, "answered", "as_challenger")
                       for v, c in sorted(by_version.items(), key=lambda kv: int(kv[0]))},
        "held_out": sum(is_held_out(r.answer.prediction_id) for r in rows),
        "store": store.where(),
    }


def _rate(counts: Counter, *totals: str) -> dict:
    seen = sum(counts[t] for t in totals)
    return {**{t: counts[t] for t in totals}, "right": counts["right"],
            "accuracy": round(counts["right"] / seen, 4) if seen else None}


def export(store: FeedbackStore, out: Path, fmt: str = "idx") -> list[Path]:
    """Write both shares as MNIST-style IDX files (gzipped) or one npz; return the paths."""
    data = load(store)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        path = out / "feedback.npz"
        np.savez_compressed(path, x_train=data.train.x, y_train=data.train.y,
                            ids_train=np.array(data.train.ids, dtype=str),
                            x_holdout=data.holdout.x, y_holdout=data.holdout.y,
                            ids_holdout=np.array(data.holdout.ids, dtype=str))
        return [path]
    written = []
    for share, split in (("train", data.train), ("holdout", data.holdout)):
        for kind, array in (("images-idx3", split.x), ("labels-idx1", split.y)):
            path = out / f"feedback-{share}-{kind}-ubyte.gz"
            with gzip.open(path, "wb") as f:
                f.write(idx_bytes(array))
            written.append(path)
    return written


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX, the format of MNIST's own files."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


# ---- the training run's hook ---------------------------------------------------------------

def prepare(settings: Settings, use: bool) -> FeedbackSet | None:
    """The corrections for a run: required with --feedback, else read only when there are any."""
    store = open_store(settings, must_exist=use)
    if store is None:
        return None
    try:
        return load(store)
    except FeedbackError:
        if use:
            raise
        log.warning("feedback store %s unreadable; no feedback_accuracy this run", store.where())
        return None


@dataclass(frozen=True)
class Weighted:
    """The training share of the corrections, and how many times over each one trains."""

    x: np.ndarray
    y: np.ndarray
    weight: int

    def __len__(self) -> int:
        return self.weight * len(self.y)


def weighted(data: FeedbackSet | None, use: bool,
             weight: int = DEFAULT_FEEDBACK_WEIGHT) -> Weighted | None:
    """The training share to train on (when asked to and there is one), `weight` times over."""
    if not use or data is None or not len(data.train):
        return None
    return Weighted(data.train.x, data.train.y, weight)


def oversample(x, twins, y, redraw, corrections: Weighted, hp):
    """Append `weight` copies of each correction to the training arrays.

    Each copy has its own pen redraw (training.augment, a seed of its own), shown at the
    CORRECTION_REDRAW rate whatever the profile's share; the page's own drawing is the rest.
    Returns (x, twins, y, redraw share, is-a-correction) for training.train.training_batches.
    """
    from training import augment

    copies = [augment.restroke(corrections.x, hp.seed + 1 + k, refine=hp.refine)
              for k in range(corrections.weight)]
    n = len(corrections)
    return (np.concatenate([x, np.tile(corrections.x, (corrections.weight, 1, 1))]),
            np.concatenate([twins, *copies]),
            np.concatenate([y, np.tile(corrections.y, corrections.weight)]),
            np.concatenate([redraw, np.full(n, CORRECTION_REDRAW, np.float32)]),
            np.concatenate([np.zeros(len(x), bool), np.ones(n, bool)]))


def turner(seed: int):
    """(images [b, 28, 28] float32, is-a-correction [b]) -> images whose corrections are
    turned, zoomed and shifted at random (the model's augmentation layers, in every profile).

    Made for tf.data: a correction repeated `weight` times must not be the same image each time.
    """
    import tensorflow as tf

    from training import models

    layers = models.augment_layers(seed)

    def turn(images, copied):
        moved = images[..., None]
        for layer in layers:
            moved = layer(moved, training=True)
        return tf.where(copied[:, None, None], moved[..., 0], images)

    return turn


def log_inputs(data: FeedbackSet | None, use: bool) -> None:
    """Both shares as MLflow dataset inputs (digest and count), their sizes and store as params.

    MLflow knows no database source, so the store's URL goes in a param instead.
    """
    import mlflow
    import mlflow.data

    if data is None:
        return
    shares = [(data.holdout, "feedback-holdout")] + ([(data.train, "feedback")] if use else [])
    for split, context in shares:
        if len(split):
            mlflow.log_input(mlflow.data.from_numpy(split.x, targets=split.y, name=context),
                             context=context)
    mlflow.log_params({"feedback": use, "feedback_store": data.source,
                       "feedback_train_size": len(data.train) if use else 0,
                       "feedback_holdout_size": len(data.holdout)})


def evaluate(predict, data: FeedbackSet | None) -> dict[str, float]:
    """`feedback_accuracy` of `predict` (pixels -> probabilities) on the held-out share."""
    if data is None or not len(data.holdout):
        return {}
    probabilities = predict(data.holdout.x.astype("float32"))
    return {"feedback_accuracy": float((np.argmax(probabilities, axis=1)
                                        == data.holdout.y).mean())}


# ---- the promote gate --------------------------------------------------------------------

def gate(settings: Settings, candidate: int, champion: int, tolerance: float = 0.0) -> str | None:
    """Why `candidate` may not replace `champion` on the held-out corrections, or None.

    Both published SavedModels answer the same, current held-out share; the gate speaks only
    when there are at least MIN_HOLDOUT_FOR_GATE rows. A store it cannot find or read refuses:
    a gate that cannot see its data must not pass (a trainer without FEEDBACK_DB_URL did).
    """
    try:
        data = load(open_store(settings))
    except FeedbackError as err:
        return (f"The held-out corrections cannot be checked: {err} The trainer must read "
                "the web UI's store (FEEDBACK_DB_URL).")
    if len(data.holdout) < MIN_HOLDOUT_FOR_GATE:
        return None
    new, best = (evaluate(saved_model_predict(settings, v), data)["feedback_accuracy"]
                 for v in (candidate, champion))
    if new < best - tolerance:
        return (f"Version {candidate} is right on {new:.2%} of the {len(data.holdout)} held-out "
                f"corrections, the champion, version {champion}, on {best:.2%}.")
    return None


def saved_model_predict(settings: Settings, version: int):
    import tensorflow as tf

    from contract import PIXELS_INPUT, PROBABILITIES_OUTPUT, SERVING_SIGNATURE

    signature = tf.saved_model.load(str(Path(settings.base_dir) / str(version))).signatures[
        SERVING_SIGNATURE]
    return lambda x: signature(**{PIXELS_INPUT: tf.constant(x)})[PROBABILITIES_OUTPUT].numpy()
