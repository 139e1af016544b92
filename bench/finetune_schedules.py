"""Compare `--from-champion` schedules: what corrections teach, and what the champion forgets.

    .venv/bin/python bench/finetune_schedules.py --champion models/mnist/1

Semeion's first four blocks (800 digits by people no run trains on) are drawn as canvases and
normalised by the served graph, as the page stores a correction; a fixed 20% is held out and
the rest are the training corrections. From the champion's published SavedModel (a quick or
full vgg), each schedule fine-tunes as `train --feedback --from-champion` does (training.train
and training.finetune: the replay sample, the weighted corrections, their augmentation) and is
measured, as the gate would, on MNIST test, the drawn digits, USPS test and Semeion's last four
blocks, beside the champion. Each row is one seed: differences of a few tenths are noise.
The figures go to promote's question: which schedule learns the most while staying within its
0.1-point tolerance on every other figure. Not run by CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.profiles import (  # noqa: E402  (path set above)
    FINE_TUNE,
    FINE_TUNE_FEEDBACK_WEIGHT,
    FINE_TUNE_KEEP,
    hyperparams,
)

# (name, FINE_TUNE overrides, correction weight, batch-norm statistics frozen, share kept)
SCHEDULES = (
    ("2 epochs x8, free (before)", {"epochs": 2}, 8, False, 1.0),
    ("4 epochs x32, free", {}, FINE_TUNE_FEEDBACK_WEIGHT, False, 1.0),
    ("4 epochs x32, frozen statistics", {}, FINE_TUNE_FEEDBACK_WEIGHT, True, 1.0),
    ("4 epochs x32, frozen, kept 0.75", {}, FINE_TUNE_FEEDBACK_WEIGHT, True, 0.75),
    ("the default: frozen, kept 0.5", {}, FINE_TUNE_FEEDBACK_WEIGHT, True, FINE_TUNE_KEEP),
)
HOLDOUT_SHARE = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--champion", required=True, type=Path,
                        help="a published vgg version folder to start from (models/mnist/N)")
    parser.add_argument("--profile", default="quick", help="the champion's profile (quick)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"),
                        help="MNIST folder (default: $MNIST_DIR, else the download cache)")
    parser.add_argument("--real-writers-dir", default=os.environ.get("REAL_WRITERS_DIR"),
                        help="USPS and Semeion folder (default: $REAL_WRITERS_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    args = parser.parse_args()

    import tensorflow as tf

    from contract import PIXELS_INPUT, PROBABILITIES_OUTPUT, SERVING_SIGNATURE
    from training import canvas, drawn, feedback, finetune, real_writers, train
    from training import data as mnist_data

    mnist = mnist_data.load(args.data_dir)
    writers = real_writers.load(args.real_writers_dir)
    users = real_writers.drawings(writers.semeion_users)
    x_users = canvas.normalize(users.pngs)
    held = np.random.default_rng(0).random(len(users)) < HOLDOUT_SHARE
    corrections = (x_users[~held], users.labels[~held])
    real = real_writers.eval_sets(writers)
    digits = drawn.load(mnist, None)
    sets = {"MNIST": (mnist.x_test, mnist.y_test),
            "drawn": (canvas.normalize(digits.pngs), digits.labels),
            "USPS": (canvas.normalize(real["real_accuracy_usps"].pngs),
                     real["real_accuracy_usps"].labels),
            "Semeion": (canvas.normalize(real["real_accuracy_semeion"].pngs),
                        real["real_accuracy_semeion"].labels),
            "held-out": (x_users[held], users.labels[held])}

    def score(predict) -> dict[str, float]:
        return {name: float((predict(x.astype("float32")).argmax(1) == y).mean())
                for name, (x, y) in sets.items()}

    signature = tf.saved_model.load(str(args.champion)).signatures[SERVING_SIGNATURE]
    champion = score(lambda x: np.concatenate([
        signature(**{PIXELS_INPUT: tf.constant(x[i:i + 1000])})[PROBABILITIES_OUTPUT].numpy()
        for i in range(0, len(x), 1000)]))
    start = finetune.Champion(0, args.champion, {})
    rows = [("the champion", champion, None)]
    for name, overrides, weight, frozen, keep in SCHEDULES:
        hp = hyperparams(args.profile, **{**FINE_TUNE, **overrides, "seed": args.seed})
        replay, _ = train.split(mnist, hp.train_limit, hp.seed)
        weighted = feedback.Weighted(*corrections, weight)
        steps = hp.epochs * -(-(len(replay[0]) + len(weighted)) // hp.batch_size)
        net = train.compile_model(hp, steps, fine_tune=frozen)
        start.load_into(net)
        started = time.perf_counter()
        net.fit(train.training_batches(*replay, hp, weighted), epochs=hp.epochs, verbose=0,
                shuffle=False)
        seconds = time.perf_counter() - started
        if keep < 1.0:
            start.blend_into(net, keep)
        rows.append((name, score(partial(net.predict, batch_size=500, verbose=0)), seconds))
        print(f"{name}: done in {seconds:.0f} s", flush=True)

    load = os.getloadavg()
    print(f"\nFrom {args.champion} ({args.profile}), {int((~held).sum())} training corrections "
          f"(Semeion rows 0-799, {int(held.sum())} held out), seed {args.seed}; "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, load "
          f"average now {load[0]:.1f}; figures through the served graph's normalisation; "
          "change from the champion in brackets")
    print(f"{'':36}" + "".join(f"{name:>17}" for name in sets) + f"{'fit':>7}")
    for name, figures, seconds in rows:
        cells = "".join(
            f"{figures[k]:>9.2%}" + (f" ({100 * (figures[k] - champion[k]):+.2f})"
                                     if seconds is not None else " " * 8) for k in sets)
        print(f"{name:36}{cells}" + (f"{seconds:>6.0f}s" if seconds is not None else ""))


if __name__ == "__main__":
    main()
