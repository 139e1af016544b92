"""The promote gate compares a version with the champion on MNIST test, the drawn digits and
the real writers (USPS test, Semeion)."""

import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from contract import CHALLENGER_ALIAS, CHAMPION_ALIAS, REAL_SEMEION_TAG, REAL_USPS_TAG
from corrections.store import FeedbackStore
from tests.contract import repository
from training import registry, tracking
from training.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A real MLflow store; `add(test, canvas, **real)` registers and publishes a version with
    them (real: real_accuracy_usps, real_accuracy_semeion; left out, as versions had before).

    One store for the module (creating one takes seconds); each test crowns its own champion.
    """
    tmp_path = tmp_path_factory.mktemp("gate")
    settings = Settings(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                        artifact_root=str(tmp_path / "artifacts"),
                        models_dir=str(tmp_path / "models"),
                        models_config=str(tmp_path / "models.config"),
                        serving_base_path=str(tmp_path / "models" / "mnist"),
                        feedback_db_url=f"sqlite:///{tmp_path}/feedback.db")
    FeedbackStore(settings.feedback_db_url).migrate()  # a store, empty: the gate sees no rows
    client = tracking.connect(settings)
    experiment = tracking.experiment_id(client, settings)

    loadable = tmp_path / "half_plus_two"
    repository.half_plus_two()(loadable)  # any SavedModel will do: the gate reads the tags

    def add(test_accuracy: float, canvas_accuracy: float, write=None, **real: float) -> int:
        metrics = {"test_accuracy": test_accuracy, "canvas_accuracy": canvas_accuracy, **real}
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_metrics(metrics)
        version = registry.register(client, settings, run.info.run_id, run.info.artifact_uri,
                                    metrics)
        folder = Path(settings.base_dir) / str(version)
        (write or (lambda path: shutil.copytree(loadable, path)))(folder)
        return version

    def crown(test_accuracy: float, canvas_accuracy: float, **real: float) -> int:
        version = add(test_accuracy, canvas_accuracy, **real)
        registry.promote(settings, version, force=True)
        return version

    add.settings, add.crown = settings, crown
    return add


def champion(settings) -> int:
    client = MlflowClient(settings.tracking_uri)
    return int(client.get_model_version_by_alias("mnist", CHAMPION_ALIAS).version)


def test_refuses_a_version_worse_on_the_drawn_digits_and_says_by_how_much(versions):
    first = versions.crown(0.990, 0.980)
    worse = versions(0.993, 0.975)  # better on MNIST, half a point worse on drawings
    with pytest.raises(registry.PromotionRefused) as refused:
        registry.promote(versions.settings, worse)
    message = str(refused.value)
    assert "on the drawn digits 97.50% against 98.00% (0.50 points worse)" in message
    assert "MNIST test" not in message and champion(versions.settings) == first


def test_refuses_a_version_worse_on_mnist_test(versions):
    versions.crown(0.990, 0.980)
    with pytest.raises(registry.PromotionRefused, match="on MNIST test 98.70% against 99.00%"):
        registry.promote(versions.settings, versions(0.987, 0.990))


def test_accepts_a_version_within_the_tolerance(versions):
    versions.crown(0.990, 0.980)
    close = versions(0.9895, 0.9792)  # 0.05 and 0.08 points behind: noise
    assert registry.promote(versions.settings, close).aliases == (CHAMPION_ALIAS,)


def test_a_wider_tolerance_lets_a_small_loss_through(versions):
    versions.crown(0.990, 0.980)
    worse = versions(0.990, 0.975)
    registry.promote(versions.settings, worse, tolerance=0.01)
    assert champion(versions.settings) == worse


@pytest.mark.parametrize("write", [repository.broken, Path.mkdir], ids=["garbage", "empty"])
def test_refuses_a_version_that_cannot_load_even_as_canary(versions, write):
    versions.crown(0.990, 0.980)
    unloadable = versions(0.995, 0.990, write=write)
    with pytest.raises(registry.PromotionRefused,
                       match=f"Version {unloadable} in .* is not a SavedModel TF Serving can"):
        registry.promote(versions.settings, unloadable, canary=True)
    client = MlflowClient(versions.settings.tracking_uri)
    assert CHALLENGER_ALIAS not in client.get_model_version("mnist", unloadable).aliases


def test_refuses_when_it_cannot_see_the_held_out_corrections(versions, tmp_path):
    """A trainer pointed at no store (a Job without FEEDBACK_DB_URL) must not pass blind."""
    first = versions.crown(0.990, 0.980)
    better = versions(0.995, 0.990)
    blind = replace(versions.settings, feedback_db_url=f"sqlite:///{tmp_path}/missing.db")
    with pytest.raises(registry.PromotionRefused,
                       match="held-out corrections cannot be checked: There is no feedback "
                             "store at sqlite:///.*missing.db"):
        registry.promote(blind, better)
    assert champion(versions.settings) == first
    assert registry.promote(versions.settings, better).version == better


REAL = {REAL_USPS_TAG: 0.978, REAL_SEMEION_TAG: 0.940}


@pytest.mark.parametrize("tag, what", [(REAL_USPS_TAG, "USPS test"),
                                       (REAL_SEMEION_TAG, "Semeion")])
def test_refuses_a_version_worse_on_a_real_writer_set_and_says_which(versions, tag, what):
    first = versions.crown(0.990, 0.980, **REAL)
    worse = versions(0.992, 0.982, **{**REAL, tag: REAL[tag] - 0.006})  # better on MNIST
    with pytest.raises(registry.PromotionRefused) as refused:
        registry.promote(versions.settings, worse)
    message = str(refused.value)
    assert f"on {what}" in message and "(0.60 points worse)" in message
    assert "MNIST test" not in message and "drawn digits" not in message
    assert champion(versions.settings) == first


def test_accepts_a_version_equal_on_the_real_writers(versions):
    versions.crown(0.990, 0.980, **REAL)
    equal = versions(0.990, 0.980, **REAL)
    assert registry.promote(versions.settings, equal).aliases == (CHAMPION_ALIAS,)


def test_a_champion_from_before_the_real_writers_is_compared_on_the_rest(versions):
    """Versions registered before the real-writer tags existed still gate, and promote."""
    versions.crown(0.990, 0.980)
    newer = versions(0.991, 0.981, **REAL)
    assert registry.promote(versions.settings, newer).real_accuracy_semeion == pytest.approx(
        REAL[REAL_SEMEION_TAG])
    older = versions(0.991, 0.981)
    assert registry.promote(versions.settings, older).real_accuracy_usps is None
