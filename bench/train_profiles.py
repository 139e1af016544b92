"""Train each profile on all 60,000 images beside the classic Keras convnet; print the figures.

    .venv/bin/python bench/train_profiles.py                  # all five rows (~35 min)
    .venv/bin/python bench/train_profiles.py --only quick     # one row

Each row reports MNIST test accuracy and `canvas_accuracy`, the accuracy on the drawn-digit
set (training/drawn.py: MNIST test digits redrawn as the page draws), through the exported
`predict_image` signature. The classic reference is the Keras example's recipe: our `convnet`
at width 32 (34,826 parameters), Adam at 1e-3, batch 128, 15 epochs, 10% held out. The
"before" rows are the profiles without pen-redrawn training digits (--redraw 0), as they were
before the drawn-digit work. Profiles go through the real `training.train.run` into a
throwaway MLflow store, so their wall time includes the redrawing, tracking, plots, export,
the drawn-digit evaluation and publishing. Results also go to results/train_profiles.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from training.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CLASSIC_EPOCHS = 15
# The targets set for this 2-core machine: minimum test and drawn-digit accuracy, wall minutes.
TARGETS = {"quick": (0.993, 0.985, 3), "full": (0.996, 0.990, 15)}
ROWS = ("classic", "quick-before", "full-before", "quick", "full")


def classic(data_dir: str | None) -> dict:
    """The Keras example: constant-rate Adam, no schedule, no augmentation."""
    import keras

    from training import canvas, data, drawn, export, models

    mnist = data.load(data_dir)
    keras.utils.set_random_seed(0)
    model = models.convnet(width=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(mnist.x_train.astype("float32"), mnist.y_train, batch_size=128,
              epochs=CLASSIC_EPOCHS, validation_split=0.1, verbose=2)
    wall = time.perf_counter() - started
    _, accuracy = model.evaluate(mnist.x_test.astype("float32"), mnist.y_test, verbose=0)
    with tempfile.TemporaryDirectory(prefix="bench-classic-") as tmp:
        drawn_accuracy = canvas.evaluate(export.export_saved_model(model, tmp),
                                         drawn.load(mnist)).metrics["canvas_accuracy"]
    return {"name": "classic convnet", "params": model.count_params(), "epochs": CLASSIC_EPOCHS,
            "test_accuracy": float(accuracy), "canvas_accuracy": drawn_accuracy,
            "wall_s": wall, "s_per_epoch": wall / CLASSIC_EPOCHS}


def profile(row: str, data_dir: str | None) -> dict:
    """One profile through the real training pipeline, tracked in a temporary store."""
    from mlflow import MlflowClient

    from training import train

    name, before = row.removesuffix("-before"), row.endswith("-before")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        settings = Settings(tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                            artifact_root=f"{tmp}/artifacts", data_dir=data_dir,
                            models_dir=f"{tmp}/models", models_config=f"{tmp}/models.config")
        started = time.perf_counter()
        result = train.run(settings, profile=name, verbose=2, redraw=0.0 if before else None)
        wall = time.perf_counter() - started
        run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
    figures = {"name": f"profile {row}", "params": int(run.data.params["param_count"]),
               "epochs": int(run.data.params["epochs"]), "test_accuracy": result.test_accuracy,
               "canvas_accuracy": result.canvas_accuracy, "wall_s": wall,
               "s_per_epoch": run.data.metrics["seconds_per_epoch"]}
    if not before:
        test, drawn_target, minutes = TARGETS[name]
        met = (result.test_accuracy >= test and result.canvas_accuracy >= drawn_target
               and wall <= 60 * minutes)
        figures["target"] = (f"{test:.1%} / {drawn_target:.1%} in {minutes} min: "
                             f"{'met' if met else 'MISSED'}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=ROWS, action="append",
                        help="run just these (repeatable; default: all five)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"),
                        help="MNIST folder (default: $MNIST_DIR, else the download cache)")
    parser.add_argument("--out", default=str(ROOT / "results" / "train_profiles.json"),
                        help="JSON results file (default: results/train_profiles.json)")
    args = parser.parse_args()
    chosen = args.only or list(ROWS)
    rows = [classic(args.data_dir) if c == "classic" else profile(c, args.data_dir)
            for c in chosen]

    print(f"\nMNIST, all 60,000 training images, tested on 10,000; {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}; wall time includes evaluation; "
          "drawn = the drawn-digit set")
    print(f"{'':22}{'params':>9}{'epochs':>8}{'test acc':>10}{'drawn':>9}{'wall':>9}"
          f"{'s/epoch':>9}  target (test / drawn)")
    for r in rows:
        print(f"{r['name']:22}{r['params']:>9,}{r['epochs']:>8}{r['test_accuracy']:>10.2%}"
              f"{r['canvas_accuracy']:>9.2%}{r['wall_s'] / 60:>8.1f}m{r['s_per_epoch']:>9.1f}  "
              f"{r.get('target', '')}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
