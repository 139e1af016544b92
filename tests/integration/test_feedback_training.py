"""Training on the page's corrections: `train --feedback`, `feedback_accuracy` and the gate.

Corrections are stored through the same store the web UI writes, with MNIST *test* digits as
the 28x28 the model saw (the serving graph's output has that form).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from corrections.store import Answer, FeedbackStore
from training import feedback, registry, train
from training.config import Settings
from training.profiles import DEFAULT_FEEDBACK_WEIGHT
from webui import pending

pytestmark = pytest.mark.integration


def settings_in(root, mnist_dir) -> Settings:
    return Settings(tracking_uri=f"sqlite:///{root}/mlflow.db",
                    artifact_root=str(root / "artifacts"), models_dir=str(root / "models"),
                    models_config=str(root / "models.config"),
                    serving_base_path=str(root / "models" / "mnist"), data_dir=str(mnist_dir),
                    feedback_db_url=f"sqlite:///{root}/feedback.db")


def store_corrections(url: str, x: np.ndarray, answered: np.ndarray, labels: np.ndarray,
                      version: str = "1") -> list[str]:
    store = FeedbackStore(url)
    ids = []
    for pixels, said, label in zip(x, answered, labels, strict=True):
        prediction_id = pending.new_id()
        store.save(Answer(prediction_id, datetime.now(UTC), "mnist", version, "stable",
                          int(said), tuple(0.1 for _ in range(10)), None,
                          np.asarray(pixels, np.uint8).tobytes()),
                   None if said == label else int(label))
        ids.append(prediction_id)
    return ids


def run_inputs(settings: Settings, run_id: str) -> dict[str, tuple[str, str]]:
    from mlflow import MlflowClient

    run = MlflowClient(settings.tracking_uri).get_run(run_id)
    return {tag.value: (d.dataset.digest, d.dataset.name)
            for d in run.inputs.dataset_inputs for tag in d.tags
            if tag.key == "mlflow.data.context"}


def test_train_with_feedback_logs_both_shares_and_holds_out_the_same_rows(tmp_path, mnist,
                                                                           mnist_dir):
    from mlflow import MlflowClient

    settings = settings_in(tmp_path, mnist_dir)
    answered = mnist.y_test[:300].copy()
    answered[::3] = (answered[::3] + 1) % 10  # a third of the answers were wrong
    ids = store_corrections(settings.feedback_db_url, mnist.x_test[:300], answered,
                            mnist.y_test[:300])
    held = sum(map(feedback.is_held_out, ids))
    assert 30 <= held <= 90  # about 20% of 300

    runs = [train.run(settings, profile="quick", train_limit=600, epochs=1, verbose=0,
                      use_feedback=True) for _ in range(2)]
    client = MlflowClient(settings.tracking_uri)
    inputs = [run_inputs(settings, r.run_id) for r in runs]
    for logged, result in zip(inputs, runs, strict=True):
        assert {"training", "testing", "feedback", "feedback-holdout"} <= set(logged)
        run = client.get_run(result.run_id).data
        assert run.params["feedback_holdout_size"] == str(held)
        assert run.params["feedback_train_size"] == str(300 - held)
        assert 0 <= run.metrics["feedback_accuracy"] <= 1
        # 600 MNIST images less the validation share, plus the training share of corrections,
        # each DEFAULT_FEEDBACK_WEIGHT times.
        assert run.params["feedback_weight"] == str(DEFAULT_FEEDBACK_WEIGHT)
        assert run.params["train_size"] == str(540 + DEFAULT_FEEDBACK_WEIGHT * (300 - held))
    assert inputs[0]["feedback-holdout"] == inputs[1]["feedback-holdout"]
    assert inputs[0]["feedback"] == inputs[1]["feedback"]


def test_stats_and_export_read_what_the_page_stored(tmp_path, mnist):
    from training.data import parse_idx

    url = f"sqlite:///{tmp_path}/feedback.db"
    store_corrections(url, mnist.x_test[:40], mnist.y_test[:40], mnist.y_test[:40], version="1")
    answered = mnist.y_test[40:60].copy()
    answered[:5] = (answered[:5] + 1) % 10
    store_corrections(url, mnist.x_test[40:60], answered, mnist.y_test[40:60], version="2")
    summary = feedback.stats(FeedbackStore(url))
    assert (summary["total"], summary["corrected"]) == (60, 5)
    assert summary["by_version"]["1"] == {"answered": 40, "as_challenger": 0, "right": 40,
                                          "accuracy": 1.0}
    assert summary["by_version"]["2"]["accuracy"] == 0.75
    assert sum(row["total"] for row in summary["by_digit"].values()) == 60

    import gzip

    paths = feedback.export(FeedbackStore(url), tmp_path / "out", "idx")
    arrays = {p.name: parse_idx(gzip.open(p).read()) for p in paths}
    images = np.concatenate([arrays["feedback-train-images-idx3-ubyte.gz"],
                             arrays["feedback-holdout-images-idx3-ubyte.gz"]])
    assert images.shape == (60, 28, 28) and len(arrays["feedback-holdout-labels-idx1-ubyte.gz"]) \
        == summary["held_out"]
    assert sorted(map(bytes, images)) == sorted(map(bytes, mnist.x_test[:60]))


def test_the_gate_refuses_a_version_worse_on_the_held_out_corrections(tmp_path, mnist,
                                                                       mnist_dir):
    settings = settings_in(tmp_path, mnist_dir)
    small = train.run(settings, profile="quick", train_limit=2000, epochs=2, verbose=0)
    registry.promote(settings, small.version, min_accuracy=0.0)
    larger = train.run(settings, profile="quick", train_limit=6000, epochs=2, verbose=0)
    assert larger.test_accuracy >= small.test_accuracy  # the old gate would let it through
    # Drawings of a style neither model knows (turned a quarter), where people agreed with
    # the champion: the challenger is right less often there.
    x = np.rot90(mnist.x_test[:1200], axes=(1, 2)).copy()
    said = np.argmax(feedback.saved_model_predict(settings, small.version)(x.astype("float32")), 1)
    store_corrections(settings.feedback_db_url, x, said, said)
    with pytest.raises(registry.PromotionRefused, match="held-out corrections"):
        registry.promote(settings, larger.version, min_accuracy=0.0)
    assert registry.promote(settings, larger.version, min_accuracy=0.0, force=True).version == 2
