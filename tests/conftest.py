"""Fixtures shared by every test layer: the real MNIST files and one small trained stack."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import local_mlflow, local_serving

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
SHARED_REAL_WRITERS = ROOT.parent / "shared" / "data" / "real-writers"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The verified MNIST folder: $MNIST_DIR, else ../shared/data/mnist, else the download."""
    from training import data

    if not os.environ.get("MNIST_DIR") and SHARED_MNIST.is_dir():
        return data.locate(SHARED_MNIST)
    return data.locate()


@pytest.fixture(scope="session", autouse=True)
def real_writers_env() -> None:
    """REAL_WRITERS_DIR, as the Makefile sets it: ../shared/data/real-writers where present
    (else the loader downloads USPS and Semeion). Every training run measures them."""
    if not os.environ.get("REAL_WRITERS_DIR") and SHARED_REAL_WRITERS.is_dir():
        os.environ["REAL_WRITERS_DIR"] = str(SHARED_REAL_WRITERS)


@pytest.fixture(scope="session")
def writers():
    """USPS and Semeion (training.real_writers.load), verified."""
    from training import real_writers

    return real_writers.load()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from training import data

    return data.load(mnist_dir)


@dataclass(frozen=True)
class Stack:
    """A trained, registered, published and promoted model, all under one temp folder."""

    root: Path
    tracking_uri: str
    models_dir: Path  # holds mnist/1
    models_config: Path  # label stable -> version 1, base path = models_dir/mnist
    version: int
    run_id: str
    test_accuracy: float

    @property
    def base_path(self) -> Path:
        return self.models_dir / "mnist"


@pytest.fixture(scope="session")
def stack(tmp_path_factory, mnist_dir) -> Stack:
    """Train once per test session (a real model, small data), register, publish, promote."""
    from training import registry, train
    from training.config import Settings

    root = tmp_path_factory.mktemp("stack")
    settings = Settings(
        tracking_uri=f"sqlite:///{root}/mlflow.db",
        artifact_root=str(root / "artifacts"),
        models_dir=str(root / "models"),
        models_config=str(root / "models.config"),
        serving_base_path=str(root / "models" / "mnist"),
        data_dir=str(mnist_dir),
        drawn_per_digit=20,
    )
    result = train.run(settings, profile="quick", train_limit=12000, epochs=2, verbose=0)
    registry.promote(settings, version=result.version, min_accuracy=0.9)
    return Stack(root, settings.tracking_uri, Path(settings.models_dir),
                 Path(settings.models_config), result.version, result.run_id,
                 result.test_accuracy)


@pytest.fixture(scope="session")
def serving_url(stack, tmp_path_factory):
    """The REST URL of `python -m serving` serving `stack` on a free loopback port."""
    log = tmp_path_factory.mktemp("logs") / "serving.log"
    with local_serving(stack.models_config, log=log) as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_url(stack, tmp_path_factory):
    """A real `mlflow server` on the session's store, on a free loopback port."""
    log = tmp_path_factory.mktemp("logs") / "mlflow.log"
    with local_mlflow(stack.tracking_uri, stack.root / "artifacts", log=log) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The SQLAlchemy URL of a real PostgreSQL that this test session starts and stops."""
    from tests.support import postgres

    if postgres.bin_dir() is None:
        pytest.fail("PostgreSQL is missing: apt-get install postgresql (.ci/run does)")
    with postgres.postgres_server() as url:
        yield url
