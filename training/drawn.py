"""A drawn-digit test set of our own: MNIST *test* digits redrawn the way the web page draws.

People draw on the page with an even, round pen, in their own size, place and slant; MNIST's
scanned pencil digits are another distribution. So each test digit is thinned to its skeleton,
traced into ordered pen strokes, smoothed, and redrawn as the page's canvas would: a 280x280
white PNG, black ink, round caps and joins, the page's pen width (with a spread around it),
placed, sized and slanted the way people draw in a box. `canvas_accuracy` on this set is what
a person drawing on the page should expect; never a training image goes into it.

The set is deterministic from its seed, named by its digest, written once into the user cache
(or a folder you name) and verified on every load like the MNIST files themselves.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.measure import approximate_polygon
from skimage.morphology import skeletonize

from contract import CANVAS_EXPORT_SIDE, PEN_WIDTH

VERSION = 2  # bump when the drawing recipe changes: the cache file's name carries it
DEFAULT_SEED = 0
DEFAULT_PER_DIGIT = 300
INK_LEVEL = 96  # MNIST pixels above this (0-255) are the pen's path before thinning
SUPERSAMPLE = 4  # draw at 4x and average down: the browser's canvas antialiases too
MIN_COVERED = 0.75  # share of a digit's ink its retraced strokes must cover
EDGE_MARGIN = 0.02  # people keep their pen this far inside the canvas's edge (canvas units)

Stroke = np.ndarray  # [n, 2] points (x, y); in canvas units (0..1) once placed


# ---- strokes from a digit ----------------------------------------------------------------

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _adjacency(skeleton: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """8-connected skeleton pixels; a diagonal step is dropped where a 4-connected one exists."""
    on = {tuple(p) for p in np.argwhere(skeleton)}
    graph = {}
    for r, c in on:
        near = []
        for dr, dc in _NEIGHBOURS:
            q = (r + dr, c + dc)
            if q not in on:
                continue
            if dr and dc and ((r + dr, c) in on or (r, c + dc) in on):
                continue  # the corner pixel already links them: avoid tiny triangles
            near.append(q)
        graph[(r, c)] = near
    return graph


def _trace(graph) -> list[list[tuple[int, int]]]:
    """Walk the skeleton graph into paths between ends and junctions, then the closed loops."""
    seen: set[frozenset] = set()
    paths = []

    def walk(start, step):
        path = [start, step]
        seen.add(frozenset((start, step)))
        while len(graph[path[-1]]) == 2:
            nxt = next((q for q in graph[path[-1]] if frozenset((path[-1], q)) not in seen), None)
            if nxt is None:
                break
            seen.add(frozenset((path[-1], nxt)))
            path.append(nxt)
        return path

    nodes = sorted(p for p, near in graph.items() if len(near) != 2)
    for node in nodes:
        if not graph[node]:
            paths.append([node])  # a lone dot
        for step in graph[node]:
            if frozenset((node, step)) not in seen:
                paths.append(walk(node, step))
    for pixel in sorted(graph):  # what is left are loops with no end or junction (a "0")
        for step in graph[pixel]:
            if frozenset((pixel, step)) not in seen:
                paths.append(walk(pixel, step))
    return paths


def _smooth(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting: the pixel staircase becomes the smooth curve a pen makes."""
    closed = len(points) > 2 and np.array_equal(points[0], points[-1])
    for _ in range(rounds):
        if len(points) < 3:
            break
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        points = cut if closed else np.vstack([points[:1], cut, points[-1:]])
        if closed:
            points = np.vstack([points, points[:1]])
    return points


def strokes_of(image: np.ndarray, min_spur: float = 2.5) -> list[Stroke]:
    """Ordered, smoothed pen strokes (x, y in 28x28 pixel units) that retrace an MNIST digit."""
    skeleton = skeletonize(np.asarray(image) > INK_LEVEL)
    graph = _adjacency(skeleton)
    strokes = []
    for path in _trace(graph):
        points = np.array([(c + 0.5, r + 0.5) for r, c in path], dtype=float)
        ends = [path[0], path[-1]]
        is_spur = any(len(graph[e]) == 1 for e in ends) and any(len(graph[e]) > 2 for e in ends)
        if is_spur and len(points) > 1 and _length(points) < min_spur:
            continue  # a thinning artefact, not something a pen drew
        strokes.append(_smooth(approximate_polygon(points, tolerance=0.6)))
    return strokes


def _length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


# ---- drawing like a person in a box ------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one person draws one digit: size, place, slant, pen; all in canvas units."""

    height: float  # the digit's height as a fraction of the canvas side
    aspect: float  # width stretch
    slant: float  # horizontal shear per unit height (positive leans right)
    rotation: float  # radians
    pen: float  # pen width as a fraction of the canvas side
    wobble: float  # amplitude of a smooth hand tremor, fraction of the digit's height
    centre: tuple[float, float]  # where the digit's box centre lands (x, y), 0..1

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Style:
        height = rng.uniform(0.35, 0.85)
        return cls(height=height, aspect=float(np.exp(rng.normal(0, 0.12))),
                   slant=rng.normal(0, 0.15), rotation=np.deg2rad(rng.normal(0, 5)),
                   pen=PEN_WIDTH * float(np.exp(rng.normal(0, 0.12))),
                   wobble=rng.uniform(0, 0.025),
                   centre=tuple(rng.uniform(0.5 - (1 - height) / 2.5, 0.5 + (1 - height) / 2.5,
                                            size=2)))


def place(strokes: list[Stroke], style: Style, rng: np.random.Generator) -> list[Stroke]:
    """Map strokes from MNIST's 28x28 frame onto the canvas (0..1), drawn in `style`."""
    allpoints = np.vstack(strokes)
    low, high = allpoints.min(axis=0), allpoints.max(axis=0)
    centre, span = (low + high) / 2, max(high[1] - low[1], 1.0)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    cos, sin = np.cos(style.rotation), np.sin(style.rotation)
    placed = []
    for stroke in strokes:
        p = (stroke - centre) / span  # unit height, centred
        tremor_x = np.sin(3 * p[:, 1] + phase[0]) + np.sin(5 * p[:, 0] + phase[1])
        tremor_y = np.sin(3 * p[:, 0] + phase[2]) + np.sin(5 * p[:, 1] + phase[3])
        p = p + style.wobble * np.stack([tremor_x, tremor_y], axis=1) / 2
        p = p * [style.aspect, 1.0]
        p[:, 0] += style.slant * -p[:, 1]  # y grows downwards: the top leans right
        p = p @ np.array([[cos, sin], [-sin, cos]])
        placed.append(p * style.height + style.centre)
    return _fit_inside(placed, style.pen / 2 + EDGE_MARGIN)


def _fit_inside(strokes: list[Stroke], margin: float) -> list[Stroke]:
    """Shift (and if need be shrink) strokes so that they keep `margin` from every edge."""
    allpoints = np.vstack(strokes)
    low, high = allpoints.min(axis=0) - margin, allpoints.max(axis=0) + margin
    scale = min(1.0, 1.0 / max(high - low))
    centre = (low + high) / 2
    target = np.clip(centre, 0.5 - (1 - (high - low) * scale) / 2,
                     0.5 + (1 - (high - low) * scale) / 2)
    return [(s - centre) * scale + target for s in strokes]


def _raster(strokes: list[Stroke], pen: float, side: int) -> Image.Image:
    """Black round-pen strokes (canvas units) on white, drawn big and averaged down."""
    big = side * SUPERSAMPLE
    image = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(image)
    width = pen * big
    for stroke in strokes:
        points = [tuple(p) for p in stroke * big]
        if len(points) > 1:
            draw.line(points, fill=0, width=max(1, round(width)), joint="curve")
        for x, y in (points[0], points[-1]):  # round caps
            draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=0)
    return image.resize((side, side), Image.Resampling.BOX)


def render(strokes: list[Stroke], pen: float = PEN_WIDTH, side: int = CANVAS_EXPORT_SIDE) -> bytes:
    """Draw strokes (canvas units) as the page does: white canvas, black round pen, as PNG."""
    buffer = io.BytesIO()
    _raster(strokes, pen, side).convert("RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _holes(mask: np.ndarray, min_area: int = 4) -> int:
    """Enclosed background regions of a few pixels or more: the loops of a 0, 6, 8 or 9."""
    background, count = ndimage.label(~mask)
    touching = np.concatenate([background[0], background[-1], background[:, 0],
                               background[:, -1]])
    areas = np.bincount(background.ravel(), minlength=count + 1)
    return sum(1 for label in range(1, count + 1)
               if label not in touching and areas[label] >= min_area)


def retraces(image: np.ndarray, strokes: list[Stroke]) -> bool:
    """Whether strokes redraw the digit faithfully: every loop kept, most of its ink covered.

    Thinning can lose a loop the digit has (a small one collapses into a line), and such a
    drawing would carry the wrong label; the set passes those digits over. A loop the writer
    already blotted in the scan has no hole to count, so those digits stay in, and some of
    them redraw as another shape (a filled 8 as one curve): no model should be tuned to read
    those "right".
    """
    mask = np.asarray(image) > INK_LEVEL
    eroded = ndimage.binary_erosion(mask)
    width = max(2 * mask.sum() / max((mask & ~eroded).sum(), 1), 1.5)  # ink area / half edge
    size = mask.shape[0]

    def redraw(pen: float) -> np.ndarray:
        return np.asarray(_raster([s / size for s in strokes], pen / size, size)) < 192

    covered = (mask & redraw(width)).sum() / max(mask.sum(), 1)
    # A thin pen for the loops: a loop the strokes go round stays open at any sane width.
    return covered >= MIN_COVERED and _holes(redraw(1.5)) >= _holes(mask)


def draw_digit(image: np.ndarray, rng: np.random.Generator,
               strokes: list[Stroke] | None = None) -> tuple[list[Stroke], Style]:
    """One MNIST digit's strokes as one person would place them on the canvas."""
    style = Style.sample(rng)
    return place(strokes if strokes is not None else strokes_of(image), style, rng), style


# ---- the set: made once, verified on every load ------------------------------------------


@dataclass(frozen=True)
class DrawnDigits:
    pngs: list[bytes]
    labels: np.ndarray  # uint8 [n]
    source_index: np.ndarray  # int64 [n]: the MNIST *test* image each was drawn from
    digest: str  # sha256 over labels, sources and PNGs: names the set
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.pngs)


def _digest(pngs: list[bytes], labels: np.ndarray, source_index: np.ndarray) -> str:
    sha = hashlib.sha256()
    sha.update(np.asarray(labels, np.uint8).tobytes())
    sha.update(np.asarray(source_index, np.int64).tobytes())
    for png in pngs:
        sha.update(len(png).to_bytes(8, "little"))
        sha.update(png)
    return sha.hexdigest()


def generate(x_test: np.ndarray, y_test: np.ndarray, seed: int = DEFAULT_SEED,
             per_digit: int = DEFAULT_PER_DIGIT) -> DrawnDigits:
    """Redraw `per_digit` test digits of each class, picked and styled from `seed`.

    Digits are taken in a seeded random order; one whose retrace is not faithful is passed over.
    """
    rng = np.random.default_rng(seed)
    chosen, pngs = [], []
    for digit in range(10):
        taken = 0
        for index in rng.permutation(np.flatnonzero(y_test == digit)):
            retraced = strokes_of(x_test[index])
            if not retraces(x_test[index], retraced):
                continue
            strokes, style = draw_digit(x_test[index], rng, retraced)
            pngs.append(render(strokes, style.pen))
            chosen.append(index)
            taken += 1
            if taken == per_digit:
                break
    chosen = np.asarray(chosen, np.int64)
    labels = np.asarray(y_test[chosen], np.uint8)
    return DrawnDigits(pngs, labels, chosen.astype(np.int64), _digest(pngs, labels, chosen))


def default_dir() -> Path:
    """The user cache, beside the downloaded MNIST files."""
    import pooch

    return Path(pooch.os_cache("digitops")) / "drawn"


def load(mnist, folder: str | os.PathLike | None = None, seed: int = DEFAULT_SEED,
         per_digit: int = DEFAULT_PER_DIGIT) -> DrawnDigits:
    """The drawn set for `seed`: read and verified from `folder`, or made once and written there.

    mnist: a training.data.Mnist; only its test split is used.
    """
    folder = Path(folder) if folder else default_dir()
    path = folder / f"drawn-digits-v{VERSION}-seed{seed}-{per_digit}.npz"
    manifest = path.with_suffix(".json")
    if path.exists() and manifest.exists():
        drawn = _read(path)
        expected = json.loads(manifest.read_text())["sha256"]
        if drawn.digest == expected:
            return drawn
        print(f"{path} does not match its digest (damaged?): drawing it again")
    drawn = generate(mnist.x_test, mnist.y_test, seed, per_digit)
    _write(drawn, path)
    manifest_tmp = manifest.with_suffix(".json.tmp")
    manifest_tmp.write_text(json.dumps({"sha256": drawn.digest, "seed": seed,
                                        "per_digit": per_digit, "version": VERSION}))
    os.replace(manifest_tmp, manifest)
    return DrawnDigits(drawn.pngs, drawn.labels, drawn.source_index, drawn.digest, path)


def _write(drawn: DrawnDigits, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(p) for p in drawn.pngs]).astype(np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, png_bytes=np.frombuffer(b"".join(drawn.pngs), np.uint8), offsets=offsets,
             labels=drawn.labels, source_index=drawn.source_index)
    os.replace(tmp, path)


def _read(path: Path) -> DrawnDigits:
    with np.load(path) as f:
        blob, offsets = f["png_bytes"].tobytes(), f["offsets"]
        labels, source_index = f["labels"], f["source_index"]
    pngs = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return DrawnDigits(pngs, labels, source_index, _digest(pngs, labels, source_index), path)
