"""The model repository the contract suite serves: small, deterministic, quick to build.

    python -m tests.contract.repository /tmp/contract-models   # for a real TF Serving

writes `models.config` and these models, each version published atomically (.tmp-N, then
rename), with base paths that are this folder's absolute path (mount it at the same path):

- `half_plus_two` (latest): exact outputs for whole-body comparisons. Signatures
  `serving_default` (x -> y = x/2 + 2), `multi` (a, b -> sum, rounded int64) and `echo`
  (text string -> length int64, text_bytes string, written back as b64).
- `hot_reload` (latest): the same module, version N answering y = x/2 + N + 1; the hot-reload
  test publishes N+1.
- `broken` (latest): version 1 is good; a test publishes an unloadable version 2.
- `mnist` (specific 1 and 2, labels stable -> 1 and canary -> 2): a convnet trained for a
  moment on 512 real MNIST digits, exported by `training.export` with both signatures.
  Next to its versions lie `.tmp-7` (an unfinished publish) and `notes`, which are not
  versions.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from contract import CANARY_LABEL, MODEL_NAME, STABLE_LABEL

TRAIN_SAMPLES = 512


def publish(base: Path, version: int, write: Callable[[Path], object]) -> Path:
    """Write a version under `.tmp-N`, then rename it to N: servers never see half of it."""
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    final = base / str(version)
    os.replace(tmp, final)
    return final


def half_plus_two(offset: float = 2.0) -> Callable[[Path], object]:
    """A writer for the deterministic model: y = x/2 + offset, plus two more signatures."""
    import tensorflow as tf

    def write(path: Path) -> None:
        class HalfPlusTwo(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
            def predict(self, x):
                return {"y": 0.5 * x + offset}

            @tf.function(input_signature=[tf.TensorSpec([None], tf.float32),
                                          tf.TensorSpec([None], tf.float32)])
            def multi(self, a, b):
                return {"sum": a + b, "rounded": tf.cast(tf.round(a), tf.int64)}

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def echo(self, text):
                return {"length": tf.cast(tf.strings.length(text), tf.int64),
                        "text_bytes": text}

        module = HalfPlusTwo()
        tf.saved_model.save(module, str(path), signatures={
            "serving_default": module.predict, "multi": module.multi, "echo": module.echo})

    return write


def broken(path: Path) -> None:
    """A version folder whose saved_model.pb is garbage: loading it must fail."""
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"this is not a SavedModel")


def tiny_mnist(mnist_dir: str | os.PathLike | None) -> Callable[[Path], object]:
    """A writer for a convnet trained for one quick epoch on 512 real MNIST digits."""
    import keras

    from training import data, models
    from training.export import export_saved_model, write_warmup_requests

    mnist = data.load(mnist_dir)
    keras.utils.set_random_seed(0)
    model = models.build("convnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = mnist.x_train[:TRAIN_SAMPLES].astype(np.float32)
    model.fit(x, mnist.y_train[:TRAIN_SAMPLES], epochs=1, batch_size=64, verbose=0)

    def write(path: Path) -> None:
        export_saved_model(model, path)
        write_warmup_requests(path, mnist.x_test[:2])

    return write


def write_config(root: Path) -> Path:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in ("half_plus_two", "hot_reload", "broken", MODEL_NAME):
        model = config.model_config_list.config.add(
            name=name, base_path=str(root / name), model_platform="tensorflow")
        if name == MODEL_NAME:
            model.model_version_policy.specific.versions.extend([1, 2])
            model.version_labels[STABLE_LABEL] = 1
            model.version_labels[CANARY_LABEL] = 2
    path = root / "models.config"
    path.write_text(text_format.MessageToString(config))
    return path


def build(root: Path, mnist_dir: str | os.PathLike | None = None) -> Path:
    """Write every model and models.config under `root`; return the config's path."""
    root = Path(root).resolve()
    publish(root / "half_plus_two", 1, half_plus_two())
    publish(root / "hot_reload", 1, half_plus_two(offset=2.0))
    publish(root / "broken", 1, half_plus_two())
    first = publish(root / MODEL_NAME, 1, tiny_mnist(mnist_dir))
    publish(root / MODEL_NAME, 2, lambda path: shutil.copytree(first, path))
    shutil.copytree(first, root / MODEL_NAME / ".tmp-7", dirs_exist_ok=True)
    (root / MODEL_NAME / "notes").mkdir(exist_ok=True)
    return write_config(root)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(Path(sys.argv[1]), os.environ.get("MNIST_DIR") or
                Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"))
