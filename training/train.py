"""Train one model on MNIST, tracked in MLflow, then register and publish it as a new version.

    python -m training train --profile quick
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contract import REAL_SEMEION_TAG, REAL_USPS_TAG
from training import canvas, drawn, feedback, finetune, real_writers, registry, tracking
from training import data as mnist_data
from training.config import Settings
from training.profiles import (
    DEFAULT_FEEDBACK_WEIGHT,
    DEFAULT_PROFILE,
    FINE_TUNE_FEEDBACK_WEIGHT,
    Hyperparams,
    hyperparams,
    run_name,
)

VALIDATION_FRACTION = 0.1
MAX_VALIDATION = 5000


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    version: int
    test_accuracy: float
    canvas_accuracy: float
    published_dir: Path
    real_accuracy_usps: float | None = None
    real_accuracy_semeion: float | None = None


def split(mnist: mnist_data.Mnist, limit: int | None, seed: int):
    """Shuffle the training set with `seed`, keep `limit` images, hold 10% out for validation."""
    total = len(mnist.x_train)
    if limit is not None and not 0 < limit <= total:
        raise ValueError(f"--train-limit must be between 1 and {total}, got {limit}")
    order = np.random.default_rng(seed).permutation(total)[: limit or total]
    n_val = min(MAX_VALIDATION, max(1, int(len(order) * VALIDATION_FRACTION)))
    val, train = order[:n_val], order[n_val:]
    return (mnist.x_train[train], mnist.y_train[train]), (mnist.x_train[val], mnist.y_train[val])


def compile_model(hp: Hyperparams, steps: int, fine_tune: bool = False):
    """Build the architecture with Adam on a warm-up-then-cosine learning-rate schedule.

    fine_tune: keep the batch-norm statistics (and scales) that will be loaded: a few hundred
    corrections of one population must not redefine what a normal activation is for all.
    """
    import keras

    from training import models

    keras.utils.set_random_seed(hp.seed)
    model = models.build(hp.model, width=hp.width, augment=hp.augment)
    if fine_tune:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # in Keras 3 this also runs it in inference mode
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=hp.learning_rate / 10, decay_steps=steps,
        warmup_target=hp.learning_rate, warmup_steps=max(1, steps // 10),
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def training_batches(x: np.ndarray, y: np.ndarray, hp: Hyperparams,
                     corrections: feedback.Weighted | None = None, with_source: bool = False):
    """Shuffled float32 batches in which a `hp.redraw` share of the digits are pen drawings.

    Every image has one redrawn twin (training.augment); each epoch picks afresh which of the
    two each batch shows, so the model sees MNIST's pencil and the page's pen side by side.
    `corrections` join `weight` times over, each copy turned and redrawn its own way
    (training.feedback); with_source adds a third element, True for a correction's copy.
    """
    import tensorflow as tf

    from training import augment

    twins = (augment.restroke(x, hp.seed, refine=hp.refine, labels=y if hp.conventions else None)
             if hp.redraw else x)
    redraw = np.full(len(x), hp.redraw, np.float32)
    source = np.zeros(len(x), bool)
    if corrections is not None:
        x, twins, y, redraw, source = feedback.oversample(x, twins, y, redraw, corrections, hp)
    turn = feedback.turner(hp.seed) if corrections is not None else None

    def pick(pair, labels, share, copied):
        drawn = tf.random.uniform(tf.shape(share)) < share
        images = tf.cast(tf.where(drawn[:, None, None], pair[1], pair[0]), tf.float32)
        return (turn(images, copied) if turn else images), labels, copied

    batches = (tf.data.Dataset.from_tensor_slices(((x, twins), y, redraw, source))
               .shuffle(len(x), seed=hp.seed).batch(hp.batch_size).map(pick))
    if not with_source:
        batches = batches.map(lambda images, labels, _: (images, labels))
    return batches.prefetch(tf.data.AUTOTUNE)


def _epoch_logger():
    """A Keras callback that logs each epoch's metrics, learning rate and duration to MLflow."""
    import keras
    import mlflow

    class MlflowEpochLogger(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            lr = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            metrics.update(learning_rate=float(lr), epoch_seconds=self.seconds[-1])
            mlflow.log_metrics(metrics, step=epoch + 1)

    return MlflowEpochLogger()


def _log_datasets(mnist, train, drawn) -> None:
    import mlflow
    import mlflow.data

    for (x, y), context in [(train, "training"), ((mnist.x_test, mnist.y_test), "testing")]:
        dataset = mlflow.data.from_numpy(x, targets=y, source=mnist.source,
                                         name=f"mnist-{context}")
        mlflow.log_input(dataset, context=context)
    mlflow.log_params({f"data.sha256.{name}": sha[:16] for name, sha in mnist.sha256.items()})
    canvas = mlflow.data.from_numpy(
        drawn.source_index, targets=drawn.labels, source=str(drawn.path or "drawn digits"),
        name=f"drawn-digits-{drawn.digest[:12]}")
    mlflow.log_input(canvas, context="canvas")
    mlflow.log_params({"data.sha256.drawn_digits": drawn.digest[:16],
                       "canvas_size": len(drawn)})


def _evaluate(model, mnist) -> tuple[dict[str, float], np.ndarray]:
    """Test loss/accuracy, per-digit accuracy, and the predicted digits, from one pass."""
    import keras

    probabilities = model.predict(mnist.x_test.astype("float32"), batch_size=500, verbose=0)
    predicted = probabilities.argmax(axis=1)
    loss = keras.losses.sparse_categorical_crossentropy(mnist.y_test, probabilities)
    metrics = {"test_loss": float(keras.ops.mean(loss)),
               "test_accuracy": float((predicted == mnist.y_test).mean())}
    for digit in range(10):
        mask = mnist.y_test == digit
        metrics[f"test_accuracy_digit_{digit}"] = float((predicted[mask] == digit).mean())
    return metrics, predicted


def _log_figures(mnist, predicted, history, drawn, canvas_result) -> None:
    import mlflow

    from training import plots

    matrix = plots.confusion_matrix(mnist.y_test, predicted)
    mlflow.log_figure(plots.confusion_figure(matrix), "plots/confusion_matrix.png")
    mlflow.log_figure(plots.misclassified_figure(mnist.x_test, mnist.y_test, predicted),
                      "plots/misclassified.png")
    mlflow.log_figure(plots.learning_curves_figure(history), "plots/learning_curves.png")
    mlflow.log_figure(plots.misclassified_figure(
        canvas_result.normalized, drawn.labels, canvas_result.predicted,
        title="Misclassified drawn digits: the MNIST digit, then the drawing as the model saw it",
        sources=mnist.x_test[drawn.source_index]),
        "plots/canvas_misclassified.png")


def run(settings: Settings, *, profile: str = DEFAULT_PROFILE, verbose: int = 1,
        use_feedback: bool = False, feedback_weight: int | None = None,
        from_champion: bool = False, **overrides) -> TrainResult:
    """Train, evaluate, log everything to MLflow, register version N and publish models/mnist/N.

    use_feedback: add the page's corrections (all but the held-out share) to the training
    split, each `feedback_weight` times (training.feedback; None: DEFAULT_FEEDBACK_WEIGHT, or
    FINE_TUNE_FEEDBACK_WEIGHT from the champion). from_champion: start from the champion's
    weights on a short schedule, and end part of the way back to them (training.finetune).
    overrides: any Hyperparams field (model, epochs, ...); None keeps the profile's value.
    """
    client = tracking.connect(settings) if from_champion else None  # else after the data load
    start = finetune.champion(client, settings) if client else None
    hp = hyperparams(profile, **(start.overrides(overrides) if start else overrides))
    feedback_weight = feedback_weight or (FINE_TUNE_FEEDBACK_WEIGHT if start
                                          else DEFAULT_FEEDBACK_WEIGHT)
    mnist = mnist_data.load(settings.data_dir)
    drawn_digits = drawn.load(mnist, settings.drawn_dir, per_digit=settings.drawn_per_digit)
    train, val = split(mnist, hp.train_limit, hp.seed)
    corrections = feedback.prepare(settings, use_feedback)
    weighted = feedback.weighted(corrections, use_feedback, feedback_weight)
    writers = real_writers.load(settings.real_writers_dir)
    real_sets = real_writers.eval_sets(writers)
    train = real_writers.extend(train, writers, hp.real, hp.seed)
    client = client or tracking.connect(settings)
    registry.check_publishable(client, settings)

    import keras
    import mlflow
    import tensorflow as tf

    trained_on = len(train[0]) + (len(weighted) if weighted else 0)
    steps = hp.epochs * -(-trained_on // hp.batch_size)
    net = compile_model(hp, steps, fine_tune=bool(start))
    if start:
        start.load_into(net)
    name = run_name(profile, hp) + (f"-from-v{start.version}" if start else "")
    with mlflow.start_run(experiment_id=tracking.experiment_id(client, settings),
                          run_name=name) as active:
        run_id = active.info.run_id
        mlflow.set_tags({
            "mlflow.source.git.commit": tracking.git_commit(settings),
            "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
            "profile": profile,
        })
        mlflow.log_params({**asdict(hp), "profile": profile, "param_count": net.count_params(),
                           "train_size": trained_on, "val_size": len(val[0]),
                           "feedback_weight": feedback_weight,
                           "from_champion": start.version if start else "no"})
        _log_datasets(mnist, train, drawn_digits)
        feedback.log_inputs(corrections, use_feedback)
        real_writers.log_inputs(writers, real_sets, hp.real)
        mlflow.log_text("\n".join(_summary_lines(net)), "model_summary.txt")

        logger = _epoch_logger()
        started = time.perf_counter()
        history = net.fit(training_batches(*train, hp, weighted), validation_data=(
            val[0].astype("float32"), val[1]), epochs=hp.epochs,
            callbacks=[logger], shuffle=False, verbose=verbose)  # the batches come shuffled
        if start:
            start.blend_into(net)
        metrics, predicted = _evaluate(net, mnist)
        metrics.update(feedback.evaluate(lambda x: net.predict(x, verbose=0), corrections))
        metrics.update(train_seconds=time.perf_counter() - started,
                       seconds_per_epoch=float(np.mean(logger.seconds)))

        with tempfile.TemporaryDirectory(prefix="digitops-export-") as tmp:
            export_dir = _export(net, Path(tmp) / "saved_model", mnist.x_test[:8])
            results = canvas.evaluate_sets(export_dir,
                                           {canvas.CANVAS_METRIC: drawn_digits, **real_sets})
            for result in results.values():
                metrics.update(result.metrics)
            mlflow.log_metrics(metrics)
            summary = (f"{name}: MNIST test {metrics['test_accuracy']:.2%}, drawn digits "
                       f"{metrics['canvas_accuracy']:.2%}, real writers: USPS test "
                       f"{metrics[REAL_USPS_TAG]:.2%}, Semeion {metrics[REAL_SEMEION_TAG]:.2%}")
            mlflow.set_tag("mlflow.note.content", summary)  # the run's description
            _log_figures(mnist, predicted, history.history, drawn_digits,
                         results[canvas.CANVAS_METRIC])
            real_writers.log_figures(real_sets, results)
            mlflow.log_artifacts(str(export_dir), artifact_path="saved_model")
            version = registry.register(client, settings, run_id, active.info.artifact_uri,
                                        metrics, description=summary)
            published = registry.publish(export_dir, settings, version)
    return TrainResult(run_id, active.info.experiment_id, version, metrics["test_accuracy"],
                       metrics["canvas_accuracy"], published, metrics[REAL_USPS_TAG],
                       metrics[REAL_SEMEION_TAG])


def _export(net, export_dir: Path, sample_pixels: np.ndarray) -> Path:
    from training import export

    export.export_saved_model(net, export_dir)
    export.write_warmup_requests(export_dir, sample_pixels)
    return export_dir


def _summary_lines(net) -> list[str]:
    lines: list[str] = []
    net.summary(print_fn=lambda line, **_: lines.append(line))
    return lines
