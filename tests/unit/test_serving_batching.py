"""Server-side batching (serving/batching.py) on a real SavedModel: y = x/2 + 2."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from google.protobuf import text_format

from serving import protos
from serving.batching import Batching, BatchingOptions
from serving.errors import ServingError
from serving.servable import Servable
from tests.contract import repository
from tests.support.servers import ROOT, wait_until


@pytest.fixture(scope="module")
def servable(tmp_path_factory) -> Servable:
    path = repository.publish(tmp_path_factory.mktemp("models") / "hpt", 1,
                              repository.half_plus_two())
    return Servable.load("hpt", 1, path)


@pytest.fixture
def batching(request):
    made = []

    def make(**options) -> Batching:
        made.append(Batching(BatchingOptions(**options)))
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, np.float32)}


def test_concurrent_single_rows_come_back_right_and_batched(servable, batching):
    scheduler = batching(max_batch_size=32, batch_timeout_micros=200_000, num_batch_threads=2,
                         allowed_batch_sizes=(1, 2, 4, 8, 16, 32))
    start = threading.Barrier(32)

    def one(i: int) -> list[float]:
        start.wait()
        return scheduler.predict(servable, "serving_default", rows(float(i)))["y"].tolist()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(32)))
    assert answers == [[i / 2 + 2] for i in range(32)]
    assert scheduler.batches_run < 32 / 2  # far fewer TensorFlow calls than requests


def test_each_request_gets_its_own_rows_in_order(servable, batching):
    scheduler = batching(max_batch_size=32, batch_timeout_micros=50_000)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda i: scheduler.predict(servable, "", rows(i, i + 0.5, i + 1))["y"].tolist(),
            range(8)))
    assert answers == [[i / 2 + 2, (i + 0.5) / 2 + 2, (i + 1) / 2 + 2] for i in range(8)]


def test_a_request_over_max_batch_size_is_refused(servable, batching):
    scheduler = batching(max_batch_size=4)
    with pytest.raises(ServingError) as caught:
        scheduler.predict(servable, "", rows(*range(5)))
    assert (caught.value.code, caught.value.message) == (
        "INVALID_ARGUMENT", "Task size 5 is larger than maximum input batch size 4")
    assert caught.value.http_status == 400


def test_a_full_queue_answers_unavailable(servable, batching):
    scheduler = batching(max_batch_size=4, batch_timeout_micros=2_000_000,
                         max_enqueued_batches=1, num_batch_threads=1)
    waiting = threading.Thread(target=scheduler.predict, args=(servable, "", rows(1, 2, 3)))
    waiting.start()
    wait_until(lambda: scheduler.queued_rows() == 3, 10, "the first request queued")
    with pytest.raises(ServingError) as caught:  # 3 + 3 rows need a second batch: no room
        scheduler.predict(servable, "", rows(4, 5, 6))
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.http_status == 503
    assert caught.value.message == ("The batch scheduling queue to which this task was "
                                    "submitted is full; currently 1 batches enqueued and "
                                    "max_enqueued_batches is 1")
    assert scheduler.predict(servable, "", rows(7))["y"].tolist() == [5.5]  # 3 + 1 fit
    waiting.join()


def test_large_batch_splitting_runs_a_big_request_in_pieces(servable, batching):
    scheduler = batching(max_batch_size=100, enable_large_batch_splitting=True,
                         max_execution_batch_size=4, allowed_batch_sizes=(1, 2, 4),
                         max_enqueued_batches=10)
    values = np.arange(10, dtype=np.float32)
    assert scheduler.predict(servable, "", {"x": values})["y"].tolist() == \
        (values / 2 + 2).tolist()
    assert scheduler.batches_run == 3  # 4 + 4 + 2
    with pytest.raises(ServingError) as caught:
        scheduler.predict(servable, "", {"x": np.zeros(101, np.float32)})
    assert caught.value.message == "Task size 101 is larger than maximum input batch size 100"
    with pytest.raises(ServingError) as caught:  # 41 rows need 11 batches of 4
        scheduler.predict(servable, "", {"x": np.zeros(41, np.float32)})
    assert caught.value.code == "UNAVAILABLE"
    assert "task size is 41 but scheduling capacity is only 40" in caught.value.message


def test_batches_are_padded_up_to_an_allowed_size(servable, batching):
    scheduler = batching(max_batch_size=8, allowed_batch_sizes=(4, 8))
    assert scheduler.predict(servable, "", rows(1, 2, 3))["y"].tolist() == [2.5, 3.0, 3.5]


def test_a_bad_request_fails_alone(servable, batching):
    scheduler = batching(max_batch_size=32, batch_timeout_micros=100_000)
    with ThreadPoolExecutor(2) as pool:
        good = pool.submit(scheduler.predict, servable, "", rows(2))
        bad = pool.submit(scheduler.predict, servable, "", {"x": np.zeros((1, 2), np.float32)})
        assert good.result()["y"].tolist() == [3.0]
        with pytest.raises(ServingError) as caught:
            bad.result()
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "input tensor x has shape [1,2], but the signature expects [-1]" in \
        caught.value.message


def test_the_checked_in_batching_config():
    options = BatchingOptions.from_proto(
        protos.read_batching_parameters(ROOT / "serving" / "batching.config"))
    assert options == BatchingOptions(max_batch_size=32, batch_timeout_micros=0,
                                      max_enqueued_batches=64, num_batch_threads=2,
                                      allowed_batch_sizes=(1, 2, 4, 8, 16, 32))


@pytest.mark.parametrize("text,message", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2 "
     "allowed_batch_sizes: 8", "allowed_batch_sizes entries must be monotonically increasing"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4",
     "Final entry in allowed_batch_sizes must equal max_batch_size"),
    ("max_batch_size { value: 0 }", "max_batch_size must be positive"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be positive"),
])
def test_configs_tf_serving_refuses_are_refused(text, message):
    params = text_format.Parse(text, protos.BatchingParameters())
    with pytest.raises(ServingError) as caught:
        BatchingOptions.from_proto(params)
    assert message in caught.value.message
