"""Corrections that teach: weighting and augmentation reach the batches, `--from-champion`
starts from the champion, and `retrain` decides by itself, once, under one lock.

Tiny on purpose (a few hundred MNIST digits, 1 epoch, a narrow network): these tests check the
loop's machinery, not its accuracy (that is bench/feedback_loop.py's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from contract import CHALLENGER_ALIAS, CHAMPION_ALIAS
from corrections.store import FeedbackStore
from tests.integration.test_feedback_training import settings_in, store_corrections
from training import feedback, finetune, models_config, registry, retrain, train
from training.config import ENV_VARS
from training.profiles import FINE_TUNE_FEEDBACK_WEIGHT, hyperparams

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TINY = {"model": "convnet", "width": 16, "train_limit": 2000, "epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def champion(tmp_path_factory, mnist_dir):
    """A tiny champion (version 1) in its own MLflow store, with an empty corrections store."""
    from dataclasses import replace

    root = tmp_path_factory.mktemp("loop")
    settings = replace(settings_in(root, mnist_dir), drawn_per_digit=10)
    result = train.run(settings, profile="quick", verbose=0, **TINY)
    registry.promote(settings, result.version, min_accuracy=0.0)
    return settings, result


def test_each_correction_reaches_the_batches_weight_times_each_copy_its_own(mnist):
    hp = hyperparams("quick", batch_size=50, redraw=0.0)  # MNIST rows pass through unchanged
    x, y = mnist.x_train[:300], mnist.y_train[:300]
    corrections = feedback.Weighted(mnist.x_test[:20], mnist.y_test[:20], weight=5)
    images, labels, copied = (np.concatenate(parts) for parts in zip(*(
        (i.numpy(), lab.numpy(), c.numpy())
        for i, lab, c in train.training_batches(x, y, hp, corrections, with_source=True)),
        strict=True))
    assert copied.sum() == 100 and (~copied).sum() == 300  # one epoch: 5 copies of each
    assert np.bincount(labels[copied], minlength=10).tolist() == \
        (5 * np.bincount(corrections.y, minlength=10)).tolist()
    # MNIST rows are the digits themselves (quick has no turns): only corrections move.
    originals = {row.tobytes() for row in x.astype(np.float32)}
    assert all(row.tobytes() in originals for row in images[~copied])
    # Every copy of a correction is turned, shifted or redrawn: none is the stored drawing...
    stored = corrections.x.astype(np.float32)
    nearest = np.abs(images[copied][:, None] - stored[None]).max(axis=(2, 3)).min(axis=1)
    assert (nearest > 0).all()
    # ...and the five copies of one drawing differ from one another (stroke width and pose).
    ink = images[copied].sum(axis=(1, 2))
    assert len(np.unique(np.round(ink))) > 90


def test_without_corrections_the_batches_are_mnist_alone(mnist):
    hp = hyperparams("quick", batch_size=100, redraw=0.0)
    batches = list(train.training_batches(mnist.x_train[:200], mnist.y_train[:200], hp))
    assert sum(len(labels) for _, labels in batches) == 200


def test_from_champion_starts_from_the_champions_weights(champion, mnist):
    import tensorflow as tf

    from training import models, tracking

    settings, first = champion
    start = finetune.champion(tracking.connect(settings), settings)
    assert start.version == first.version and start.architecture == {"model": "convnet",
                                                                    "width": 16}
    net = models.build("convnet", width=16)
    start.load_into(net)
    saved = tf.saved_model.load(str(start.saved_model)).signatures["serving_default"]
    pixels = mnist.x_test[:64].astype(np.float32)
    np.testing.assert_allclose(net.predict(pixels, verbose=0),
                               saved(pixels=tf.constant(pixels))["probabilities"].numpy(),
                               atol=1e-5)
    with pytest.raises(ValueError, match="--from-champion trains the champion's network"):
        start.overrides({"model": "vgg"})

    # A fine-tune that cannot move (a learning rate of 1e-9) reads MNIST as the champion does,
    # where the same run from scratch would guess.
    tuned = train.run(settings, profile="quick", verbose=0, from_champion=True,
                      learning_rate=1e-9, train_limit=300, epochs=1)
    assert abs(tuned.test_accuracy - first.test_accuracy) < 0.02 and first.test_accuracy > 0.5
    run = MlflowClient(settings.tracking_uri).get_run(tuned.run_id)
    assert run.data.params["from_champion"] == str(first.version)
    assert run.data.params["feedback_weight"] == str(FINE_TUNE_FEEDBACK_WEIGHT)
    assert run.info.run_name.endswith(f"-from-v{first.version}")


def test_a_fine_tune_ends_part_of_the_way_back_to_the_champion(champion):
    import keras

    from training import models, tracking

    settings, _ = champion
    start = finetune.champion(tracking.connect(settings), settings)
    net = models.build("convnet", width=16)
    start.load_into(net)
    before = [keras.ops.convert_to_numpy(v) for v in net.weights]
    for variable, value in zip(net.weights, before, strict=True):
        variable.assign(value + 1.0)  # where a fine-tune took them
    start.blend_into(net, keep=0.25)
    for variable, value in zip(net.weights, before, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), value + 0.25, atol=1e-5)


def test_a_fine_tune_keeps_the_champions_batch_statistics(mnist):
    """Corrections from one population train the weights, not what a normal activation is."""
    import keras

    hp = hyperparams("quick", width=8, batch_size=64, redraw=0.0)
    statistics = {}
    for fine_tune in (False, True):
        net = train.compile_model(hp, steps=2, fine_tune=fine_tune)
        norms = [layer for layer in net.layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
        before = [keras.ops.convert_to_numpy(v) for layer in norms for v in layer.variables]
        net.fit(mnist.x_train[:128].astype("float32") * 3, mnist.y_train[:128], epochs=1,
                batch_size=64, verbose=0)
        after = [keras.ops.convert_to_numpy(v) for layer in norms for v in layer.variables]
        statistics[fine_tune] = all(np.array_equal(a, b) for a, b in zip(before, after,
                                                                         strict=True))
    assert statistics == {False: False, True: True}


def _versions(settings) -> list[int]:
    client = MlflowClient(settings.tracking_uri)
    return sorted(int(v.version) for v in client.search_model_versions("name='mnist'"))


def _retrain_cli(settings, *args: str) -> subprocess.Popen:
    env = {**os.environ, **{ENV_VARS[k]: str(getattr(settings, k)) for k in (
        "tracking_uri", "artifact_root", "data_dir", "models_dir", "models_config",
        "serving_base_path", "feedback_db_url", "drawn_per_digit")}}
    return subprocess.Popen([sys.executable, "-m", "training", "retrain", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_retrain_decides_once_survives_a_kill_and_says_why(champion, mnist, monkeypatch,
                                                          capsys):
    settings, first = champion
    client = MlflowClient(settings.tracking_uri)
    base = registry.alias_version(client, settings, CHAMPION_ALIAS)
    known = _versions(settings)
    tiny = {"profile": "quick", "from_champion": True, "train_limit": 300, "epochs": 1}
    answered = mnist.y_test[1000:1200].copy()
    answered[::2] = (answered[::2] + 1) % 10  # half the answers were wrong

    # Below the threshold: nothing, and nothing written.
    store_corrections(settings.feedback_db_url, mnist.x_test[1000:1030], answered[:30],
                      mnist.y_test[1000:1030])
    decision = retrain.run(settings, min_corrections=50, min_accuracy=0.0, **tiny)
    assert decision.action == "nothing" and "30 new corrections" in decision.reason
    assert _versions(settings) == known

    # Killed while it trains: no version, and the lock it held is left behind...
    store_corrections(settings.feedback_db_url, mnist.x_test[1030:1100], answered[30:100],
                      mnist.y_test[1030:1100])
    killed = _retrain_cli(settings, "--min-corrections", "50", "--train-limit", "20000",
                          "--epochs", "3")
    deadline = time.monotonic() + 240
    while not client.search_runs([client.get_experiment_by_name("mnist").experiment_id],
                                 "attributes.status = 'RUNNING'"):
        assert killed.poll() is None and time.monotonic() < deadline, killed.stdout.read()
        time.sleep(0.5)
    time.sleep(3)  # inside model.fit
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    assert _versions(settings) == known
    assert not [p for p in (ROOT / settings.models_dir).glob("mnist/.tmp-*")]
    assert client.get_registered_model("mnist-retrain-lock").tags["pid"] == str(killed.pid)

    # ...and the next run takes it over and starts clean. A challenger ruined by a huge
    # learning rate is served as canary, refused with the reason, and taken down again.
    written = []
    real_write = models_config.write
    monkeypatch.setattr(models_config, "write", lambda config, path: written.append(
        dict(config.model_config_list.config[0].version_labels)) or real_write(config, path))
    refused = retrain.run(settings, min_corrections=50, min_accuracy=0.0, tolerance=0.0,
                          **{**tiny, "learning_rate": 0.5})
    assert refused.action == "refused" and "worse than the champion" in refused.reason
    assert refused.version == max(known) + 1 and refused.new_corrections == 100
    assert written == [{"stable": base, "canary": refused.version},
                       {"stable": base, "canary": base}]
    assert registry.alias_version(client, settings, CHALLENGER_ALIAS) is None
    tags = client.get_model_version("mnist", refused.version).tags
    assert tags[retrain.DECISION_TAG] == "refused" and "worse than the champion" in \
        tags[retrain.REASON_TAG]

    # Unchanged store: the second run does nothing.
    again = retrain.run(settings, min_corrections=50, min_accuracy=0.0, **tiny)
    assert again.action == "nothing" and again.new_corrections == 0
    assert _versions(settings) == known + [refused.version]

    # 100 more: trained, served as canary, promoted; `feedback stats` shows both decisions.
    store_corrections(settings.feedback_db_url, mnist.x_test[1100:1200], answered[100:],
                      mnist.y_test[1100:1200])
    written.clear()
    promoted = retrain.run(settings, min_corrections=50, min_accuracy=0.0, tolerance=1.0,
                           **tiny)
    assert promoted.action == "promoted" and promoted.new_corrections == 100
    assert written[0] == {"stable": base, "canary": promoted.version}
    assert written[-1] == {"stable": promoted.version, "canary": promoted.version}
    assert registry.alias_version(client, settings, CHAMPION_ALIAS) == promoted.version
    assert [d["decision"] for d in retrain.decisions(client, settings)] == ["promoted",
                                                                             "refused"]
    from training import cli

    monkeypatch.setenv("FEEDBACK_DB_URL", settings.feedback_db_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    capsys.readouterr()
    assert cli.main(["feedback", "stats"]) == 0
    shown = capsys.readouterr().out
    assert f"retrain     version {promoted.version} promoted" in shown
    assert f"retrain     version {refused.version} refused" in shown


def test_the_lock_holds_against_a_second_retrain_and_a_dead_holder_loses_it(champion):
    settings, _ = champion
    from training import tracking

    client = tracking.connect(settings)
    FeedbackStore(settings.feedback_db_url).migrate()  # a store, so that only the lock says no
    held = retrain.Lock(client, settings)
    assert held.acquire()
    try:
        second = _retrain_cli(settings, "--min-corrections", "1")
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 0, out
        assert "another retrain is running: mnist-retrain-lock is held by pid " \
            f"{os.getpid()}" in out
        assert not retrain.Lock(client, settings).acquire()  # alive here: not stale
    finally:
        held.release()
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST|not found"):
        client.get_registered_model(held.name)

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = retrain.Lock(client, settings)
    left.me["pid"] = str(dead.pid)  # a holder whose process has ended on this host
    assert left.acquire()
    taker = retrain.Lock(client, settings)
    assert taker.acquire()  # stale: taken over
    assert client.get_registered_model(taker.name).tags["holder"] == taker.me["holder"]
    taker.release()
