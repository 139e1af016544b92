"""Training-only augmentation: MNIST digits redrawn the way people draw on the page.

A person's digit on the page is an even, round pen line whose width, next to the digit's size,
depends on how big they draw; it has their own slant, turn, proportions and wobble, and a quick
hand carries a stroke on past where it meant to stop. So each training digit is thinned to its
skeleton (spurs pruned, the pixel staircase smoothed), its stroke ends run on a little, and it
is redrawn along it with a round pen of a random width, after a random slant, turn, stretch
and smooth elastic bend, then framed exactly as `predict_image` frames a drawing: ink fitted
into 20x20, centre of mass in the middle of 28x28.

Every step works on all points of a chunk of digits at once (each point knows its digit), and
the chunks are drawn on every core, so the whole training split is redrawn in seconds and every
run draws its own variants. Serving never sees this module: it changes no input, only what the
model learns from.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from contract import IMAGE_SIZE
from training.drawn import INK_LEVEL  # MNIST pixels that are the pen's path
from training.preprocess import FIT_SIZE  # the box predict_image fits a drawing's ink into

PEN_RANGE = (1.2, 4.4)  # pen width in 28x28 pixels: a large digit, thin pen .. a small one
CHUNK = 4096  # digits drawn together: big enough for numpy, small enough to stay in cache
SPUR = 2  # skeleton branches this long (pixels) are thinning artefacts
OVERSHOOT = 2.5  # pixels (of 28) a stroke may run on past its end
# Each digit's own hand: spreads (standard deviations) of slant (shear per unit height), turn
# (degrees) and width stretch (log), and the largest elastic bend (share of its height).
# A heavy-tailed width stretch (a Student t of 2 degrees of freedom) was tried and taken
# out: it cost the full profile 1.9 points on Semeion (training/profiles.py).
SLANT, TURN, STRETCH, BEND = 0.2, 7.0, 0.15, 0.045
# Writing conventions MNIST's American writers rarely use and much of the world does: a 1 with
# a long upstroke (a flag), some with a foot; a 7 crossed at its middle; a 9 whose tail curls
# back to the left. With --conventions, this share of the redrawn 1s, 7s and 9s gets one, drawn
# with the same pen as the rest of the digit.
CONVENTION_SHARE = 0.3
STEP = 0.5  # pixels (of 28) between the points of an added stroke


def skeleton_points(images: np.ndarray, rng: np.random.Generator | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Points along each digit's skeleton (pixels and midpoints between neighbours).

    With `rng` (refined), the skeleton is made more like a pen's path: thinning's short spurs
    are pruned, each pixel moves to the mean of its skeleton neighbours, which straightens the
    pixel staircase into a smooth line, and each stroke end runs on for up to OVERSHOOT pixels,
    as a quick hand lifts the pen late. Returns (digit index [p], (x, y) [p, 2]) sorted by
    digit; every digit has a point.
    """
    skeletons = np.stack([skeletonize(image > INK_LEVEL) for image in images])
    if rng is not None:
        skeletons = _prune(skeletons)
    empty = ~skeletons.any(axis=(1, 2))
    skeletons[empty, IMAGE_SIZE // 2, IMAGE_SIZE // 2] = True
    rows, cols = _unsmoothed(skeletons) if rng is None else _smoothed(skeletons)
    padded = np.pad(skeletons, ((0, 0), (1, 1), (1, 1)))
    on = np.nonzero(skeletons)
    digits, ys, xs = [on[0]], [rows[on]], [cols[on]]
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        neighbour = padded[:, 1 + dr:1 + dr + IMAGE_SIZE, 1 + dc:1 + dc + IMAGE_SIZE]
        d, r, c = np.nonzero(skeletons & neighbour)
        digits.append(d)
        ys.append((rows[d, r, c] + rows[d, r + dr, c + dc]) / 2)
        xs.append((cols[d, r, c] + cols[d, r + dr, c + dc]) / 2)
    if rng is not None:
        d, y, x = _overshoot(skeletons, rows, cols, rng)
        digits.append(d)
        ys.append(y)
        xs.append(x)
    digit = np.concatenate(digits)
    y, x = np.concatenate(ys) + 0.5, np.concatenate(xs) + 0.5
    order = np.argsort(digit, kind="stable")
    return digit[order], np.stack([x[order], y[order]], axis=1).astype(np.float32)


def _around(planes: np.ndarray) -> np.ndarray:
    """The sum over each pixel's 3x3 neighbourhood (itself included), digit by digit."""
    padded = np.pad(planes, ((0, 0), (1, 1), (1, 1)))
    return sum(padded[:, r:r + IMAGE_SIZE, c:c + IMAGE_SIZE] for r in range(3) for c in range(3))


# The eight neighbours of a pixel, in order around it.
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _ends(skeletons: np.ndarray) -> np.ndarray:
    """Stroke ends: pixels whose one to three neighbours sit side by side on one side of them."""
    padded = np.pad(skeletons, ((0, 0), (1, 1), (1, 1)))
    ring = [padded[:, 1 + r:1 + r + IMAGE_SIZE, 1 + c:1 + c + IMAGE_SIZE] for r, c in _RING]
    arcs = sum((~ring[k] & ring[(k + 1) % 8]).astype(np.int8) for k in range(8))
    count = sum(n.astype(np.int8) for n in ring)
    return skeletons & (arcs == 1) & (count <= 3)


def _prune(skeletons: np.ndarray) -> np.ndarray:
    """Drop branches up to SPUR pixels long, then regrow the true stroke ends that lost them."""
    pruned = skeletons & ~_isolated(skeletons)
    for _ in range(SPUR):
        pruned &= ~_ends(pruned)
    ends = _ends(pruned)
    for _ in range(SPUR):
        ends = (_around(ends.astype(np.int8)) > 0) & skeletons & ~pruned
        pruned |= ends
    gone = ~pruned.any(axis=(1, 2))
    pruned[gone] = skeletons[gone]
    return pruned


def _isolated(skeletons: np.ndarray) -> np.ndarray:
    return skeletons & (_around(skeletons.astype(np.int8)) == 1)


def _unsmoothed(skeletons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's own (row, col)."""
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    shape = skeletons.shape
    return np.broadcast_to(grid[None, :, None], shape), np.broadcast_to(grid[None, None, :], shape)


def _smoothed(skeletons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each skeleton pixel's (row, col) moved to the mean of its skeleton neighbourhood."""
    weight = skeletons.astype(np.float32)
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    count = np.maximum(_around(weight), 1.0)
    return (_around(weight * grid[None, :, None]) / count,
            _around(weight * grid[None, None, :]) / count)


def _overshoot(skeletons, rows, cols, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points that carry each stroke end straight on, away from the stroke, by 0..OVERSHOOT."""
    weight = skeletons.astype(np.float32)
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    near = np.maximum(_around(_around(weight)), 1.0)  # the 5x5 neighbourhood, weighted
    d, r, c = np.nonzero(_ends(skeletons))
    end = np.stack([rows[d, r, c], cols[d, r, c]], axis=1)
    body = np.stack([_around(_around(weight * grid[None, :, None]))[d, r, c],
                     _around(_around(weight * grid[None, None, :]))[d, r, c]], axis=1)
    body /= near[d, r, c][:, None]
    away = end - body
    away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-6)
    run = rng.uniform(0, OVERSHOOT, size=len(d))[:, None] * np.linspace(0.2, 1.0, 5)[None]
    points = end[:, None, :] + away[:, None, :] * run[..., None]  # [ends, 5, (row, col)]
    return np.repeat(d, 5), points[..., 0].ravel(), points[..., 1].ravel()


def _box(digit: np.ndarray, xy: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each digit's bounding box (low, high) [n, 2] from its points (sorted by digit)."""
    starts = np.searchsorted(digit, np.arange(n))
    return np.minimum.reduceat(xy, starts), np.maximum.reduceat(xy, starts)


def _bend(digit, xy, n, rng) -> np.ndarray:
    """Slant, turn, stretch and elastically bend each digit around its centre (unit height)."""
    low, high = _box(digit, xy, n)
    p = (xy - ((low + high) / 2)[digit]) / np.maximum(high - low, 1.0)[digit, 1:2]
    # A smooth random displacement field: three low-frequency waves along each axis.
    freq = rng.uniform(1.0, 4.0, size=(n, 3, 2))[digit]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3, 2))[digit]
    amp = rng.uniform(0, BEND, size=(n, 2))[digit]
    p = p + amp * np.sin(p[:, None, ::-1] * freq + phase).mean(axis=1)
    p[:, 0] -= rng.normal(0, SLANT, size=n)[digit] * p[:, 1]  # slant: y grows downwards
    angle = np.deg2rad(rng.normal(0, TURN, size=n))[digit]
    cos, sin = np.cos(angle), np.sin(angle)
    stretch = np.exp(rng.normal(0, STRETCH, size=n))[digit]
    return np.stack([(p[:, 0] * cos - p[:, 1] * sin) * stretch,
                     p[:, 0] * sin + p[:, 1] * cos], axis=1)


def _frame(digit, xy, n, pen) -> np.ndarray:
    """Scale and centre each digit so its inked box (pen included) is 20 on the longer side."""
    low, high = _box(digit, xy, n)
    longest = np.maximum((high - low).max(axis=1), 1e-3)
    scale = np.maximum(FIT_SIZE - pen, 2.0) / longest
    return (xy - ((low + high) / 2)[digit]) * scale[digit, None] + IMAGE_SIZE / 2


def _draw(digit, xy, pen) -> np.ndarray:
    """Ink of a round pen along each digit's points, antialiased over the pen's edge.

    A pixel's ink is 1 within half the pen width of the nearest point, fading to 0 over one
    pixel beyond. One distance transform over a stack of digits finds each pixel's nearest
    inked cell (the huge spacing between digits keeps them apart); the distance is then taken
    to that cell's exact point.
    """
    cols, rows = np.clip(xy.astype(int), 0, IMAGE_SIZE - 1).T
    at = (digit, rows, cols)
    away = np.ones((len(pen), IMAGE_SIZE, IMAGE_SIZE), bool)
    away[at] = False
    point = np.zeros((2, len(pen), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    point[(0, *at)], point[(1, *at)] = xy[:, 0], xy[:, 1]
    nearest = ndimage.distance_transform_edt(away, sampling=(1e6, 1, 1), return_distances=False,
                                             return_indices=True)
    near_x, near_y = point[(0, *nearest)], point[(1, *nearest)]
    centre = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    distance = np.hypot(centre[None, None, :] - near_x, centre[None, :, None] - near_y)
    return np.clip(pen[:, None, None] / 2 + 0.5 - distance, 0.0, 1.0)


def _centre_of_mass(ink: np.ndarray) -> np.ndarray:
    """Shift each digit by whole pixels so its centre of mass sits in the middle, as MNIST."""
    total = np.maximum(ink.sum(axis=(1, 2)), 1e-6)
    centres = np.arange(IMAGE_SIZE) + 0.5
    com = np.stack([(ink.sum(axis=2) * centres).sum(axis=1),
                    (ink.sum(axis=1) * centres).sum(axis=1)], axis=1) / total[:, None]
    shift = np.clip(np.round(IMAGE_SIZE / 2 - com).astype(int), -4, 4)
    padded = np.pad(ink, ((0, 0), (4, 4), (4, 4)))
    rows = np.arange(IMAGE_SIZE)[None, :] + 4 - shift[:, :1]
    cols = np.arange(IMAGE_SIZE)[None, :] + 4 - shift[:, 1:]
    return padded[np.arange(len(ink))[:, None, None], rows[:, :, None], cols[:, None, :]]


def restroke(images: np.ndarray, seed: int, refine: bool = False,
             labels: np.ndarray | None = None) -> np.ndarray:
    """Redraw uint8 [n, 28, 28] MNIST digits as pen drawings; returns uint8 [n, 28, 28].

    refine: along a pruned, smoothed skeleton whose strokes run on (see skeleton_points).
    labels: the digits' labels, to draw some 1s, 7s and 9s in other conventions (conventions).
    Chunks of CHUNK digits are drawn on a thread per core (numpy and scipy let go of the GIL
    for their array work), each with its own random stream spawned from `seed`, so the
    result does not depend on the number of cores.
    """
    chunks = range(0, len(images), CHUNK)
    streams = np.random.SeedSequence(seed).spawn(len(chunks))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        drawn = list(pool.map(lambda start, stream: _restroke_chunk(
            images[start:start + CHUNK], np.random.default_rng(stream), refine,
            None if labels is None else labels[start:start + CHUNK]), chunks, streams))
    return np.concatenate(drawn) if drawn else np.empty_like(images)


def _restroke_chunk(images: np.ndarray, rng: np.random.Generator, refine: bool,
                    labels: np.ndarray | None) -> np.ndarray:
    n = len(images)
    digit, xy = skeleton_points(images, rng if refine else None)
    if labels is not None:
        digit, xy = conventions(digit, xy, labels, rng)
    pen = np.exp(rng.uniform(*np.log(PEN_RANGE), size=n))
    placed = _frame(digit, _bend(digit, xy, n, rng), n, pen)
    ink = _centre_of_mass(_draw(digit, placed, pen))
    return np.round(ink * 255).astype(np.uint8)


def conventions(digit: np.ndarray, xy: np.ndarray, labels: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Add a convention's stroke to a CONVENTION_SHARE of the 1s, 7s and 9s (see above).

    Works on skeleton points (digit index [p], (x, y) [p, 2], y down, sorted by digit) and
    returns more of them, still sorted; the bend, framing and pen that follow treat the new
    stroke as part of the digit.
    """
    n = len(labels)
    starts = np.searchsorted(digit, np.arange(n + 1))
    chosen = np.nonzero((rng.random(n) < CONVENTION_SHARE) & np.isin(labels, list(_STROKES)))[0]
    added = [_STROKES[int(labels[d])](xy[starts[d]:starts[d + 1]], rng) for d in chosen]
    if not added:
        return digit, xy
    digit = np.concatenate([digit, *(np.full(len(a), d) for d, a in zip(chosen, added,
                                                                          strict=True))])
    xy = np.concatenate([xy, *added]).astype(np.float32)
    order = np.argsort(digit, kind="stable")
    return digit[order], xy[order]


def _line(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    count = max(2, int(np.ceil(np.linalg.norm(end - start) / STEP)) + 1)
    return start + np.linspace(0.0, 1.0, count)[:, None] * (end - start)


def _flag(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1's upstroke: from its top, down to the left; a third of them also stand on a foot."""
    height = np.ptp(points[:, 1]) + 1
    top = points[points[:, 1].argmin()]
    angle = np.deg2rad(rng.uniform(15, 50))
    flag = _line(top, top + rng.uniform(0.3, 0.6) * height * np.array([-np.cos(angle),
                                                                        np.sin(angle)]))
    if rng.random() >= 1 / 3:
        return flag
    bottom = points[points[:, 1].argmax()]
    half = rng.uniform(0.15, 0.3) * height
    return np.concatenate([flag, _line(bottom - [half, 0], bottom + [half, 0])])


def _crossbar(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 7's bar across its stem, a little below the middle, nearly level."""
    low, height = points[:, 1].min(), np.ptp(points[:, 1]) + 1
    y = low + rng.uniform(0.45, 0.65) * height
    near = np.abs(points[:, 1] - y) < 1.5
    x = np.median(points[near, 0]) if near.any() else points[:, 0].mean()
    half = rng.uniform(0.15, 0.25) * height
    tilt = rng.normal(0, 0.1) * half
    return _line(np.array([x - half, y + tilt]), np.array([x + half, y - tilt]))


def _tail(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 9's tail carried on from its lowest point, curling down and back to the left."""
    height = np.ptp(points[:, 1]) + 1
    bottom = points[points[:, 1].argmax()]
    radius = rng.uniform(0.12, 0.25) * height
    sweep = np.deg2rad(rng.uniform(90, 180))
    turn = np.linspace(0.0, sweep, max(3, int(np.ceil(radius * sweep / STEP)) + 1))
    centre = bottom - [radius, 0]
    return centre + radius * np.stack([np.cos(turn), np.sin(turn)], axis=1)


_STROKES = {1: _flag, 7: _crossbar, 9: _tail}
