"""Train real (small) models on the real MNIST files into a temporary MLflow store."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import tensorflow as tf
from mlflow import MlflowClient

from contract import CHAMPION_ALIAS, IMAGE_SIGNATURE, SERVING_SIGNATURE, STABLE_LABEL
from corrections.store import FeedbackStore
from serving import models_config
from training import real_writers, registry, train
from training.config import ENV_VARS, Settings
from training.export import WARMUP_FILE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SMALL_DRAWN_SET = 20  # drawings per digit: enough to measure, quick to answer


# What a shell shows as exit status 130: the status itself, or death by SIGINT. Python 3.11
# ends the process with SIGINT even though main handled the Ctrl-C when the KeyboardInterrupt
# passed through exec() of a string on its way (dataclasses and namedtuple build their methods
# so while modules import); the line and what is left behind are the same.
STOPPED_BY_CTRL_C = (130, -signal.SIGINT)


def settings_in(folder: Path, mnist_dir: Path) -> Settings:
    return Settings(tracking_uri=f"sqlite:///{folder}/mlflow.db",
                    artifact_root=str(folder / "artifacts"), data_dir=str(mnist_dir),
                    models_dir=str(folder / "models"),
                    models_config=str(folder / "models.config"),
                    serving_base_path=str(folder / "models" / "mnist"),
                    drawn_per_digit=SMALL_DRAWN_SET,
                    feedback_db_url=f"sqlite:///{folder}/feedback.db")


def cli_env(settings: Settings) -> dict[str, str]:
    values = {"tracking_uri": settings.tracking_uri, "artifact_root": settings.artifact_root,
              "data_dir": settings.data_dir, "models_dir": settings.models_dir,
              "models_config": settings.models_config,
              "serving_base_path": settings.serving_base_path,
              "drawn_per_digit": str(settings.drawn_per_digit),
              "feedback_db_url": settings.feedback_db_url}
    if settings.real_writers_dir:
        values["real_writers_dir"] = settings.real_writers_dir
    return {**os.environ, **{ENV_VARS[k]: v for k, v in values.items()}}


def cli(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=ROOT,
                          env=cli_env(settings), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """`train --train-limit 5000 --epochs 1` through the real CLI, then a weaker version 2."""
    settings = settings_in(tmp_path_factory.mktemp("training"), mnist_dir)
    FeedbackStore(settings.feedback_db_url).migrate()  # promote's gate reads it (no rows yet)
    first = cli(settings, "train", "--train-limit", "5000", "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    second = train.run(settings, model="convnet", train_limit=1000, epochs=1, verbose=0)
    return settings, first.stdout, second


def test_cli_ends_with_one_screen_of_results(trained):
    _, stdout, _ = trained
    for label in ["run id", "version        mnist v1", "test accuracy", "drawn digits",
                  "real writers   USPS test ", "published", "MLflow"]:
        assert label in stdout


def test_run_records_params_metrics_data_and_artifacts(trained):
    settings, _, _ = trained
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version("mnist", "1")
    run = client.get_run(version.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model"] == "vgg" and params["epochs"] == "1"
    assert params["train_limit"] == "5000" and int(params["param_count"]) > 10000
    for name in ["batch_size", "learning_rate", "seed", "profile", "train_size", "val_size"]:
        assert name in params
    assert metrics["test_accuracy"] >= 0.9
    for name in ["test_loss", "train_seconds", "seconds_per_epoch", "test_accuracy_digit_0",
                 "test_accuracy_digit_9", "loss", "accuracy", "val_loss", "val_accuracy",
                 "learning_rate", "epoch_seconds", "canvas_accuracy_digit_0",
                 "canvas_accuracy_digit_9", "real_accuracy_usps_digit_0",
                 "real_accuracy_semeion_digit_9"]:
        assert name in metrics, name
    assert 0.5 < metrics["canvas_accuracy"] <= 1.0
    # Other people's digits drawn on the canvas survive the drawing: a model that saw 4,500
    # MNIST digits once reads most of them (the page's 16x16 -> 280x280 -> 28x28 path).
    assert metrics["real_accuracy_usps"] > 0.8 and metrics["real_accuracy_semeion"] > 0.5
    for tag in ["canvas_accuracy", "real_accuracy_usps", "real_accuracy_semeion"]:
        assert float(version.tags[tag]) == pytest.approx(metrics[tag])
    assert params["canvas_size"] == str(10 * SMALL_DRAWN_SET) and params["redraw"] == "0.5"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 1
    assert len(tags["mlflow.source.git.commit"]) >= 7
    assert tags["tensorflow_version"] == tf.__version__
    inputs = {(d.tags[0].value, d.dataset.name): d.dataset for d in run.inputs.dataset_inputs}
    drawn_name = f"drawn-digits-{params['data.sha256.drawn_digits'][:12]}"
    assert set(inputs) == {("training", "mnist-training"), ("testing", "mnist-testing"),
                           ("canvas", drawn_name), ("real-eval", "usps-test"),
                           ("real-eval", "semeion-eval")}
    assert all(dataset.digest for dataset in inputs.values())
    assert params["data.sha256.semeion"] == real_writers.FILES["semeion.data"][2][:16]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/confusion_matrix.png", "plots/misclassified.png",
                         "plots/learning_curves.png", "plots/canvas_misclassified.png",
                         "plots/real_accuracy_usps_misclassified.png",
                         "plots/real_accuracy_semeion_misclassified.png"}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "model_summary.txt", "saved_model", "plots"}


def test_runs_and_versions_say_what_they_are(trained):
    """Named after profile, architecture, what differs and seed; described with accuracy."""
    settings, _, second = trained
    client = MlflowClient(settings.tracking_uri)
    first = client.get_run(client.get_model_version("mnist", "1").run_id)
    assert first.info.run_name == "full-vgg-e1-n5000-s0"
    assert client.get_run(second.run_id).info.run_name == "full-convnet-e1-n1000-s0"
    note = first.data.tags["mlflow.note.content"]
    assert note.startswith("full-vgg-e1-n5000-s0: MNIST test ") and "drawn digits" in note
    assert "real writers: USPS test " in note and "Semeion " in note
    assert client.get_model_version("mnist", "1").description == note
    experiment = client.get_experiment(first.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_versions_are_registered_and_published(trained):
    settings, _, second = trained
    client = MlflowClient(settings.tracking_uri)
    assert second.version == 2
    v1 = client.get_model_version("mnist", "1")
    assert v1.tags["run_id"] == v1.run_id and float(v1.tags["test_accuracy"]) >= 0.9
    assert v1.source.endswith("/saved_model")
    base = Path(settings.base_dir)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no .tmp-N left behind
    assert (base / "1" / WARMUP_FILE).stat().st_size > 0


def test_published_saved_model_has_both_signatures(trained):
    settings, _, _ = trained
    loaded = tf.saved_model.load(str(Path(settings.base_dir) / "1"))
    pixels = loaded.signatures[SERVING_SIGNATURE]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in
            pixels.structured_input_signature[1].items()} == {"pixels": (tf.float32,
                                                                          [None, 28, 28])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in pixels.structured_outputs.items()} == {
        "probabilities": (tf.float32, [None, 10]), "digit": (tf.int64, [None])}
    image = loaded.signatures[IMAGE_SIGNATURE]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in
            image.structured_input_signature[1].items()} == {"image": (tf.string, [None])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in image.structured_outputs.items()} == {
        "probabilities": (tf.float32, [None, 10]), "digit": (tf.int64, [None]),
        "normalized": (tf.float32, [None, 28, 28])}


def test_promote_gates_on_minimum_and_champion(trained):
    settings, _, _ = trained
    refused = cli(settings, "promote", "--version", "2", "--min-accuracy", "0.999")
    assert refused.returncode == 1 and "below the minimum" in refused.stderr
    assert not Path(settings.models_config).exists()  # a refusal changes nothing

    registry.promote(settings, version=2, min_accuracy=0.3)  # first champion: the weak one
    registry.promote(settings, version=1, min_accuracy=0.9)  # a better one is accepted
    worse = cli(settings, "promote", "--version", "2", "--min-accuracy", "0.3")
    assert worse.returncode == 1 and "worse than the champion, version 1" in worse.stderr

    client = MlflowClient(settings.tracking_uri)
    assert int(client.get_model_version_by_alias("mnist", CHAMPION_ALIAS).version) == 1
    config = models_config.read(settings.models_config).model_config_list.config[0]
    assert config.version_labels[STABLE_LABEL] == 1
    assert config.base_path == settings.serving_base_path

    # The rollback the README names works whatever the floor: version 2 is below 0.98.
    rollback = cli(settings, "promote", "--version", "2", "--force")
    assert rollback.returncode == 0, rollback.stderr
    assert "--force: skipped the accuracy floor" in rollback.stdout
    assert int(client.get_model_version_by_alias("mnist", CHAMPION_ALIAS).version) == 2
    listing = cli(settings, "list")
    assert listing.returncode == 0 and "champion" in listing.stdout
    header, newest = listing.stdout.splitlines()[:2]
    assert header.split()[3:5] == ["USPS", "Semeion"] and newest.split()[3].endswith("%")


def test_unreachable_tracking_server_fails_fast(tmp_path, mnist_dir):
    settings = Settings(tracking_uri="http://127.0.0.1:9", data_dir=str(mnist_dir),
                        models_dir=str(tmp_path / "models"))
    started = time.monotonic()
    result = cli(settings, "list", timeout=60)
    assert result.returncode == 2 and "not reachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_missing_mnist_says_what_to_do_and_writes_nothing(tmp_path):
    settings = settings_in(tmp_path, tmp_path / "no-mnist")
    result = cli(settings, "train", "--epochs", "1")
    assert result.returncode == 2 and "MNIST_DIR" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-mnist"] or not any(
        tmp_path.iterdir())


def test_missing_real_writers_say_what_to_do_and_write_nothing(tmp_path, mnist_dir):
    settings = dataclasses.replace(settings_in(tmp_path, mnist_dir),
                                   real_writers_dir=str(tmp_path / "no-real-writers"))
    result = cli(settings, "train", "--epochs", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "usps-zip.train.gz is missing" in result.stderr and "REAL_WRITERS_DIR" in result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


def test_bad_flags_are_refused_by_argparse(tmp_path, mnist_dir):
    result = cli(settings_in(tmp_path, mnist_dir), "train", "--epochs", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    assert not any(tmp_path.iterdir())


def test_ctrl_c_while_training_stops_at_once_with_one_line_and_publishes_nothing(tmp_path,
                                                                                   mnist_dir):
    """Ctrl-C three seconds into a real run's training, while it redraws the training digits on
    every core (worker threads must not hold the process up); the test below covers the
    instants before, while the libraries load."""
    settings = settings_in(tmp_path, mnist_dir)
    process = subprocess.Popen([sys.executable, "-m", "training", "train", "--profile", "quick"],
                               cwd=ROOT, env=cli_env(settings), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_a_run(Path(settings.tracking_uri.removeprefix("sqlite:///")), process)
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        stderr = process.communicate(timeout=60)[1]
        code = process.returncode
    finally:
        process.kill()
    assert code in STOPPED_BY_CTRL_C, stderr[-3000:]
    assert time.monotonic() - started < 20
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "models").exists()
    runs = MlflowClient(settings.tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(settings.tracking_uri).search_experiments()])
    assert [run.info.status for run in runs] in ([], ["FAILED"])


def wait_for_a_run(database: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until the trainer's MLflow run exists: its store is whole (a Ctrl-C while MLflow creates
    its tables leaves a store MLflow cannot open) and training has begun. Read with sqlite3, so
    this test's own client does not race the trainer to create the tables."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                if db.execute("SELECT count(*) FROM runs").fetchone()[0]:
                    return
        except sqlite3.OperationalError:
            pass  # no file or no runs table yet
        time.sleep(0.2)
    raise AssertionError(f"the trainer began no MLflow run in {timeout} s "
                         f"(exit code {process.poll()})")


@pytest.mark.parametrize("delay", [0.2, 0.4, 0.8, 1.6])
def test_ctrl_c_while_the_trainer_starts_ends_with_the_same_one_line(tmp_path, mnist_dir, delay):
    """Ctrl-C in the first second or two, while the trainer imports MLflow, SQLAlchemy and
    TensorFlow: whichever import it lands in, the same line and exit 130, no traceback."""
    process = subprocess.Popen([sys.executable, "-m", "training", "train", "--profile", "quick"],
                               cwd=ROOT, env=cli_env(settings_in(tmp_path, mnist_dir)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=60)[1]
    finally:
        process.kill()
    assert process.returncode in STOPPED_BY_CTRL_C, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
