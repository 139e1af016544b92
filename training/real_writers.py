"""Handwriting by people who are not MNIST's writers: USPS and Semeion, drawn on the canvas.

MNIST's test split (and the drawn-digit set redrawn from it) only measures MNIST's own
writers. USPS (US postal envelopes) and Semeion (about 80 people in Italy) measure everyone
else: every training run answers them as the page would, through `predict_image`, as
`real_accuracy_usps` (USPS test) and `real_accuracy_semeion` (Semeion rows SEMEION_USERS_ROWS
on). Semeion's first rows are users the model has never met: they reach training only as
corrections through the page, never directly.

The files come from REAL_WRITERS_DIR, else they are downloaded once into the user cache from
their public sources. Copies differ in number formatting, so a file is verified by the sha256
of the arrays it parses to, not by its bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from contract import CANVAS_EXPORT_SIDE, NUM_CLASSES

SIDE = 16  # both sets are 16x16
SEMEION_USERS_ROWS = 800  # Semeion's first four blocks: the users of "Corrections that teach"

# local file name: (public source, digits, sha256 of the parsed x then y bytes)
FILES = {
    "usps-zip.train.gz": (
        "https://hastie.su.domains/ElemStatLearn/datasets/zip.train.gz", 7291,
        "99f84249a49cdbdd95e85d2d6b76a932e3e1af4e7cd4feb8a185480c8be04007"),
    "usps-zip.test.gz": (
        "https://hastie.su.domains/ElemStatLearn/datasets/zip.test.gz", 2007,
        "1db6199abf5d29d6090a6597972c42f06f2ada694ce4290cc0e97c2e2d3529a9"),
    "semeion.data": (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/semeion/semeion.data", 1593,
        "8e0ce9435c3005eed03c83867f1426977adfa0e73a6c1d2faf83a0a37e19516c"),
}


class RealWritersError(RuntimeError):
    """A missing, damaged or unparseable real-writer file, with what to do about it."""


@dataclass(frozen=True)
class Digits:
    """One set of 16x16 digits."""

    name: str  # usps-train, usps-test, semeion, semeion-eval
    x: np.ndarray  # uint8 [n, 16, 16], 255 = ink, 0 = background
    y: np.ndarray  # uint8 [n]
    source: str  # the file it came from

    def __len__(self) -> int:
        return len(self.y)

    @property
    def digest(self) -> str:
        """sha256 of the images, then the labels: the same for any copy's number format."""
        return _digest(self.x, self.y)

    def rows(self, start: int, stop: int | None = None, name: str | None = None) -> Digits:
        return Digits(name or self.name, self.x[start:stop], self.y[start:stop], self.source)


@dataclass(frozen=True)
class RealWriters:
    usps_train: Digits
    usps_test: Digits
    semeion: Digits  # all 1,593 rows: never trained on directly
    folder: Path

    @property
    def semeion_users(self) -> Digits:
        """Rows [0, SEMEION_USERS_ROWS): users who reach training only as page corrections."""
        return self.semeion.rows(0, SEMEION_USERS_ROWS, "semeion-users")

    @property
    def semeion_eval(self) -> Digits:
        """Rows SEMEION_USERS_ROWS on: what real_accuracy_semeion is measured on."""
        return self.semeion.rows(SEMEION_USERS_ROWS, name="semeion-eval")

    @property
    def digests(self) -> dict[str, str]:
        return {d.name: d.digest for d in (self.usps_train, self.usps_test, self.semeion)}


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    sha = hashlib.sha256(np.ascontiguousarray(x, np.uint8).tobytes())
    sha.update(np.ascontiguousarray(y, np.uint8).tobytes())
    return sha.hexdigest()


def _numbers(path: Path, per_row: int) -> np.ndarray:
    """The file's numbers as float rows of per_row; spaces or commas, any float formatting."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        values = np.array(re.split(r"[\s,]+", raw.decode("ascii").strip()), dtype=np.float64)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:
        raise RealWritersError(f"{path} does not parse as rows of numbers ({err}): it is damaged "
                               "or not the original. Delete it and fetch it again.") from err
    if values.size % per_row:
        raise RealWritersError(f"{path} holds {values.size} numbers, not rows of {per_row}: it "
                               "is damaged or not the original. Delete it and fetch it again.")
    return values.reshape(-1, per_row)


def parse_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """ESL's zip.*.gz: a label, then 256 grays in [-1, 1] (1 is ink) per line."""
    rows = _numbers(path, 1 + SIDE * SIDE)
    x = np.round((np.clip(rows[:, 1:], -1, 1) + 1) * 127.5).astype(np.uint8)
    return x.reshape(-1, SIDE, SIDE), rows[:, 0].astype(np.uint8)


def parse_semeion(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """UCI's semeion.data: 256 values 0/1 (1 is ink), then a one-hot label, per line."""
    rows = _numbers(path, SIDE * SIDE + NUM_CLASSES)
    x = np.where(rows[:, :SIDE * SIDE] > 0.5, 255, 0).astype(np.uint8)
    return x.reshape(-1, SIDE, SIDE), rows[:, SIDE * SIDE:].argmax(axis=1).astype(np.uint8)


_PARSERS = {"usps-zip.train.gz": parse_usps, "usps-zip.test.gz": parse_usps,
            "semeion.data": parse_semeion}


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one of FILES and verify its arrays' count and digest."""
    if not path.is_file():
        raise RealWritersError(
            f"Real-writer file {path.name} is missing from {path.parent}. Copy the three files "
            f"({', '.join(FILES)}) there, or unset REAL_WRITERS_DIR to download them into the "
            "user cache.")
    _, count, expected = FILES[path.name]
    x, y = _PARSERS[path.name](path)
    actual = _digest(x, y)
    if len(y) != count or actual != expected:
        raise RealWritersError(
            f"{path} parses to {len(y)} digits with sha256 {actual}, expected {count} with "
            f"{expected}: it is damaged or not the original. Delete it and fetch it again.")
    return x, y


def _download(cache_dir: Path) -> Path:
    """Fetch any missing file into cache_dir; a download that does not verify is deleted."""
    import pooch

    for name, (url, _, _) in FILES.items():
        if (cache_dir / name).is_file():
            continue
        try:
            pooch.retrieve(url, known_hash=None, fname=name, path=cache_dir, progressbar=False)
        except Exception as err:  # network errors come in many types; all mean the same here
            raise RealWritersError(
                f"Could not download {name} from {url} ({err}). Check the network, or set "
                "REAL_WRITERS_DIR to a folder holding the three real-writer files.") from err
        try:
            read(cache_dir / name)
        except RealWritersError as err:
            (cache_dir / name).unlink()
            raise RealWritersError(
                f"The download of {name} from {url} is not the original ({err}). Try again "
                "later, or set REAL_WRITERS_DIR to a folder holding the three files.") from err
    return cache_dir


def default_dir() -> Path:
    """The user cache, beside the downloaded MNIST files."""
    import pooch

    return Path(pooch.os_cache("digitops")) / "real-writers"


def load(data_dir: str | os.PathLike | None = None) -> RealWriters:
    """USPS train and test, and Semeion, verified: data_dir, else $REAL_WRITERS_DIR, else the
    download cache."""
    chosen = data_dir or os.environ.get("REAL_WRITERS_DIR")
    folder = Path(chosen).expanduser() if chosen else _download(default_dir())
    sets = {}
    for name, key in [("usps-zip.train.gz", "usps-train"), ("usps-zip.test.gz", "usps-test"),
                      ("semeion.data", "semeion")]:
        x, y = read(folder / name)
        sets[key] = Digits(key, x, y, str((folder / name).resolve()))
    return RealWriters(sets["usps-train"], sets["usps-test"], sets["semeion"], folder.resolve())


# ---- as the page would send them -----------------------------------------------------------


def canvas_pngs(images: np.ndarray, seed: int = 0) -> list[bytes]:
    """Each 16x16 image (255 = ink) as a drawing the page could have sent.

    Dark ink on a light CANVAS_EXPORT_SIDE canvas, at the size and place training.drawn's
    people draw (its Style), scaled up smoothly like a pen's antialiased line. Deterministic
    for a seed.
    """
    from training.drawn import Style

    rng = np.random.default_rng(seed)
    pngs = []
    for image in images:
        style = Style.sample(rng)
        side = max(SIDE, round(style.height * CANVAS_EXPORT_SIDE))
        ink = Image.fromarray(np.asarray(image, np.uint8)).resize((side, side),
                                                                  Image.Resampling.BILINEAR)
        canvas = Image.new("L", (CANVAS_EXPORT_SIDE, CANVAS_EXPORT_SIDE), 255)
        left, top = (np.clip(np.asarray(style.centre) * CANVAS_EXPORT_SIDE - side / 2, 0,
                             CANVAS_EXPORT_SIDE - side)).round().astype(int)
        canvas.paste(Image.fromarray(255 - np.asarray(ink)), (int(left), int(top)))
        out = io.BytesIO()
        canvas.save(out, format="PNG", compress_level=1)  # the pixels are what matters
        pngs.append(out.getvalue())
    return pngs


@dataclass(frozen=True)
class Drawings:
    """A real-writer set as canvas drawings: what training.canvas.evaluate answers."""

    name: str
    pngs: list[bytes]
    labels: np.ndarray  # uint8 [n]
    sources: np.ndarray  # uint8 [n, 16, 16]: the images they were drawn from
    digest: str  # the set's digest (its arrays), not the PNGs'
    source: str

    def __len__(self) -> int:
        return len(self.pngs)


def drawings(digits: Digits, seed: int = 0) -> Drawings:
    return Drawings(digits.name, canvas_pngs(digits.x, seed), digits.y, digits.x,
                    digits.digest, digits.source)


# The metric each evaluation set is measured as, per run.
EVAL_METRICS = {"real_accuracy_usps": "usps_test", "real_accuracy_semeion": "semeion_eval"}


def eval_sets(writers: RealWriters, seed: int = 0) -> dict[str, Drawings]:
    """{metric: drawings}: USPS test and Semeion's evaluation rows, as the page sends them."""
    return {metric: drawings(getattr(writers, part), seed) for metric, part in
            EVAL_METRICS.items()}


def training_images(digits: Digits, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits drawn on the canvas, as the served graph's classifier would see them.

    uint8 [n, 28, 28] in MNIST form, so they join MNIST's training images and get the same
    augmentation (pen redraws, shifts, turns): USPS was deslanted and scaled before
    publication, and those redraw it with a hand's slant and proportions again.
    """
    from training import canvas

    return canvas.normalize(canvas_pngs(digits.x, seed)), digits.y


def extend(train: tuple[np.ndarray, np.ndarray], writers: RealWriters, use: bool,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training split with USPS train added, when `use` (the --real flag)."""
    if not use:
        return train
    x, y = training_images(writers.usps_train, seed)
    return np.concatenate([train[0], x]), np.concatenate([train[1], y])


def log_inputs(writers: RealWriters, sets: dict[str, Drawings], use: bool) -> None:
    """The evaluation sets as MLflow inputs (context real-eval), and USPS train if trained on."""
    import mlflow
    import mlflow.data

    parts = [(drawn.name, drawn.sources, drawn.labels, drawn.source, "real-eval")
             for drawn in sets.values()]
    if use:
        usps = writers.usps_train
        parts.append((usps.name, usps.x, usps.y, usps.source, "training"))
    for name, x, y, source, context in parts:
        dataset = mlflow.data.from_numpy(x, targets=y, source=source, name=name)
        mlflow.log_input(dataset, context=context)
    mlflow.log_params({f"data.sha256.{name.replace('-', '_')}": digest[:16]
                       for name, digest in writers.digests.items()})


def log_figures(sets: dict[str, Drawings], results: dict) -> None:
    """A grid of each set's mistakes: the 16x16 original, then what the classifier saw."""
    import mlflow

    from training import plots

    for metric, drawn in sets.items():
        result = results[metric]
        mlflow.log_figure(plots.misclassified_figure(
            result.normalized, drawn.labels, result.predicted, sources=drawn.sources,
            title=f"Misclassified {drawn.name}: the original, then the drawing as the model saw "
                  "it"), f"plots/{metric}_misclassified.png")
