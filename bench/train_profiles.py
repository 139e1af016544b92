"""Train each profile on all 60,000 images beside the classic Keras convnet; print the figures.

    .venv/bin/python bench/train_profiles.py                  # classic, quick, full (~16 min)
    .venv/bin/python bench/train_profiles.py --only quick     # one profile

The classic reference is the Keras example's recipe: our `convnet` at width 32 (34,826
parameters), Adam at 1e-3, batch 128, 15 epochs, 10% held out. Our profiles go through the
real `training.train.run` into a throwaway MLflow store, so their wall time includes tracking,
plots, export and publishing. Results also go to results/train_profiles.json.
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
# The targets set for this 2-core machine: (minimum test accuracy, maximum wall minutes).
TARGETS = {"quick": (0.993, 3), "full": (0.996, 15)}


def classic(data_dir: str | None) -> dict:
    """The Keras example: constant-rate Adam, no schedule, no augmentation."""
    import keras

    from training import data, models

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
    return {"name": "classic convnet", "params": model.count_params(), "epochs": CLASSIC_EPOCHS,
            "test_accuracy": float(accuracy), "wall_s": wall, "s_per_epoch": wall / CLASSIC_EPOCHS}


def profile(name: str, data_dir: str | None) -> dict:
    """One profile through the real training pipeline, tracked in a temporary store."""
    from mlflow import MlflowClient

    from training import train

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        settings = Settings(tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                            artifact_root=f"{tmp}/artifacts", data_dir=data_dir,
                            models_dir=f"{tmp}/models", models_config=f"{tmp}/models.config")
        started = time.perf_counter()
        result = train.run(settings, profile=name, verbose=2)
        wall = time.perf_counter() - started
        run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
    accuracy, minutes = TARGETS[name]
    met = result.test_accuracy >= accuracy and wall <= 60 * minutes
    return {"name": f"profile {name}", "params": int(run.data.params["param_count"]),
            "epochs": int(run.data.params["epochs"]), "test_accuracy": result.test_accuracy,
            "wall_s": wall, "s_per_epoch": run.data.metrics["seconds_per_epoch"],
            "target": f"{accuracy:.1%} in {minutes} min: {'met' if met else 'MISSED'}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["classic", "quick", "full"], action="append",
                        help="run just these (repeatable; default: all three)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"),
                        help="MNIST folder (default: $MNIST_DIR, else the download cache)")
    parser.add_argument("--out", default=str(ROOT / "results" / "train_profiles.json"),
                        help="JSON results file (default: results/train_profiles.json)")
    args = parser.parse_args()
    chosen = args.only or ["classic", "quick", "full"]
    rows = [classic(args.data_dir) if c == "classic" else profile(c, args.data_dir)
            for c in chosen]

    print(f"\nMNIST, all 60,000 training images, tested on 10,000; {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}; wall time includes evaluation")
    print(f"{'':18}{'params':>9}{'epochs':>8}{'test acc':>10}{'wall':>9}{'s/epoch':>9}  target")
    for r in rows:
        print(f"{r['name']:18}{r['params']:>9,}{r['epochs']:>8}{r['test_accuracy']:>10.2%}"
              f"{r['wall_s'] / 60:>8.1f}m{r['s_per_epoch']:>9.1f}  {r.get('target', '')}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
