"""Server-side batching as TF Serving does it (--enable_batching --batching_parameters_file).

Predict requests for the same version and signature wait up to `batch_timeout_micros` in a
queue, run as one TensorFlow call, and each gets its own rows back. REST and gRPC both call
`Batching.predict`, so they share the queues. The rules are those of TF Serving's
SharedBatchScheduler and BatchingSession, with their error texts:

- a request of more rows than `max_batch_size` is refused ("Task size N is larger than maximum
  input batch size M", INVALID_ARGUMENT), unless `enable_large_batch_splitting`, which cuts it
  into pieces of at most `max_execution_batch_size` rows that run in several batches;
- a batch runs once full or once its first request has waited `batch_timeout_micros`, on one
  of `num_batch_threads` threads; a request that needs a new batch while
  `max_enqueued_batches` wait already is refused (UNAVAILABLE, "...queue ... is full");
- a batch is padded up to the next `allowed_batch_sizes` entry with copies of its first row,
  so TensorFlow sees a few shapes only;
- with `pad_variable_length_inputs`, inputs whose inner dimensions differ are padded to the
  largest with each tensor's first element; without it they never share a batch.

Two differences on purpose: a request whose inputs do not fit the signature is answered alone
(with the error it gets unbatched) instead of failing the batch it would have joined; and when
a batch fails (an image that cannot be decoded, say), each of its requests runs again alone,
so only the request that caused the error gets it, not its neighbours.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from serving.errors import ServingError, from_exception, invalid
from serving.servable import Servable


def _cpus() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters with TF Serving's defaults for fields a file leaves out."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=_cpus)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # with splitting; 0 means max_batch_size

    @property
    def execution_limit(self) -> int:
        """The most rows one TensorFlow call gets."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size

    @classmethod
    def from_proto(cls, params) -> BatchingOptions:
        """Read a parsed BatchingParameters; refuse what TF Serving refuses at start."""
        defaults = cls()

        def value(name: str, default):
            return getattr(params, name).value if params.HasField(name) else default

        options = cls(
            max_batch_size=value("max_batch_size", defaults.max_batch_size),
            batch_timeout_micros=value("batch_timeout_micros", defaults.batch_timeout_micros),
            max_enqueued_batches=value("max_enqueued_batches", defaults.max_enqueued_batches),
            num_batch_threads=value("num_batch_threads", defaults.num_batch_threads),
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
            enable_large_batch_splitting=value("enable_large_batch_splitting", False),
            max_execution_batch_size=value("max_execution_batch_size", 0),
        )
        options.validate()
        return options

    def validate(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) <= 0:
                raise invalid(f"{name} must be positive; was {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise invalid("batch_timeout_micros must be non-negative; was "
                          f"{self.batch_timeout_micros}")
        sizes = self.allowed_batch_sizes
        if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
            raise invalid("allowed_batch_sizes entries must be monotonically increasing")
        if sizes and sizes[-1] != self.execution_limit:
            limit = ("max_execution_batch_size" if self.enable_large_batch_splitting
                     else "max_batch_size")
            raise invalid(f"Final entry in allowed_batch_sizes must equal {limit}; was "
                          f"{sizes[-1]} vs. {self.execution_limit}")


class _Task:
    """Some rows of one request, waiting for their batch to run."""

    def __init__(self, inputs: Mapping[str, np.ndarray], size: int):
        self.inputs = inputs
        self.size = size
        self.done = threading.Event()
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: ServingError | None = None


class _Batch:
    def __init__(self):
        self.tasks: list[_Task] = []
        self.size = 0
        self.started = 0.0  # when its first task arrived (time.monotonic)

    def add(self, task: _Task) -> None:
        if not self.tasks:
            self.started = time.monotonic()
        self.tasks.append(task)
        self.size += task.size


class _Queue:
    """The batches of one servable, signature and (without padding) input shape."""

    def __init__(self, servable: Servable, signature: str):
        self.servable = servable
        self.signature = signature
        self.batches: deque[_Batch] = deque([_Batch()])  # the last one is open
        self.running = 0


def _rows(inputs: Mapping[str, np.ndarray]) -> int:
    sizes = set()
    for array in inputs.values():
        if array.ndim == 0:
            raise invalid("Batching session Run() input tensors must have at least one "
                          "dimension")
        sizes.add(array.shape[0])
    if len(sizes) != 1:
        raise invalid("Batching session Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


class Batching:
    """The batch scheduler: queues by servable and signature, `num_batch_threads` threads."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: dict[tuple, _Queue] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.batches_run = 0  # TensorFlow calls made, for tests and logs
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def queued_rows(self) -> int:
        """Rows waiting for a batch thread."""
        with self._cond:
            return sum(b.size for q in self._queues.values() for b in q.batches)

    def admit(self, rows: int) -> None:
        """Refuse a request of more rows than max_batch_size before its tensors are built."""
        if rows > self.options.max_batch_size:
            raise invalid(f"Task size {rows} is larger than maximum input batch size "
                          f"{self.options.max_batch_size}")

    def predict(self, servable: Servable, signature: str,
                inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `inputs` in a batch with other requests; return this request's rows."""
        servable.check_inputs(signature, inputs)
        rows = _rows(inputs)
        self.admit(rows)
        shapes = () if self.options.pad_variable_length_inputs else tuple(
            (name, array.shape[1:]) for name, array in sorted(inputs.items()))
        key = (id(servable), signature, shapes)
        with self._cond:
            queue = self._queues.get(key)
            if queue is None or queue.servable is not servable:
                queue = self._queues[key] = _Queue(servable, signature)
            tasks = self._enqueue(queue, inputs, rows)
            self._cond.notify_all()
        for task in tasks:
            task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error
        if len(tasks) == 1:
            return tasks[0].outputs
        return {name: np.concatenate([t.outputs[name] for t in tasks])
                for name in tasks[0].outputs}

    def _enqueue(self, queue: _Queue, inputs: Mapping[str, np.ndarray],
                 rows: int) -> list[_Task]:
        """Add the request to the open batch, or to new ones; called with the lock held."""
        options, batches = self.options, queue.batches
        limit = options.execution_limit
        if not options.enable_large_batch_splitting:
            if batches[-1].size + rows > limit:
                if len(batches) >= options.max_enqueued_batches:
                    raise ServingError(
                        "UNAVAILABLE", "The batch scheduling queue to which this task was "
                        f"submitted is full; currently {len(batches)} batches enqueued and "
                        f"max_enqueued_batches is {options.max_enqueued_batches}")
                batches.append(_Batch())
            task = _Task(inputs, rows)
            batches[-1].add(task)
            return [task]
        room = limit - batches[-1].size
        capacity = (options.max_enqueued_batches - len(batches)) * limit + room
        if rows > capacity:
            raise ServingError(
                "UNAVAILABLE", "The batch scheduling queue to which this task was submitted "
                f"is full; task size is {rows} but scheduling capacity is only {capacity} "
                f"(num_enqueued_batches={len(batches)}, max_enqueued_batches="
                f"{options.max_enqueued_batches}, open_batch_size={batches[-1].size}, "
                f"max_execution_batch_size={limit})")
        tasks, start = [], 0
        while start < rows:
            take = min(room, rows - start) if room else min(limit, rows - start)
            if not room:
                batches.append(_Batch())
            task = _Task({k: v[start:start + take] for k, v in inputs.items()}, take)
            batches[-1].add(task)
            tasks.append(task)
            start += take
            room = 0
        return tasks

    # -- batch threads ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._next()
                while picked is None:
                    if self._closed:
                        return
                    self._cond.wait(self._wait_time())
                    picked = self._next()
            queue, batch = picked
            try:
                self._run(queue, batch)
            finally:
                with self._cond:
                    queue.running -= 1
                    if not queue.running and len(queue.batches) == 1 \
                            and not queue.batches[0].tasks:
                        self._queues = {k: q for k, q in self._queues.items() if q is not queue}

    def _ready(self, queue: _Queue, now: float) -> _Batch | None:
        if len(queue.batches) > 1:
            return queue.batches[0]
        open_batch = queue.batches[0]
        if open_batch.tasks and (
                self._closed or open_batch.size >= self.options.execution_limit
                or now >= open_batch.started + self.options.batch_timeout_micros / 1e6):
            return open_batch
        return None

    def _next(self) -> tuple[_Queue, _Batch] | None:
        """The batch that has waited longest among those ready to run; called locked."""
        now = time.monotonic()
        ready = [(batch.started, id(queue), queue, batch) for queue in self._queues.values()
                 if (batch := self._ready(queue, now)) is not None]
        if not ready:
            return None
        _, _, queue, batch = min(ready, key=lambda r: r[:2])
        queue.batches.popleft()
        if not queue.batches:
            queue.batches.append(_Batch())
        queue.running += 1
        self.batches_run += 1
        return queue, batch

    def _wait_time(self) -> float | None:
        """Seconds until the next open batch times out; None to wait for a request."""
        timeout = self.options.batch_timeout_micros / 1e6
        starts = [q.batches[0].started for q in self._queues.values() if q.batches[0].tasks]
        if not starts:
            return None
        return max(min(starts) + timeout - time.monotonic(), 0.0)

    def _run(self, queue: _Queue, batch: _Batch) -> None:
        """Run a batch; when it fails, run its tasks one by one so each gets its own answer."""
        tasks = batch.tasks
        try:
            if not self._run_together(queue, tasks, batch.size) and len(tasks) > 1:
                for task in tasks:
                    self._run_together(queue, [task], task.size)
        finally:
            for task in tasks:
                task.done.set()

    def _run_together(self, queue: _Queue, tasks: list[_Task], size: int) -> bool:
        """One TensorFlow call for `tasks`: set their outputs and return True, or return False
        (and give a lone task the error)."""
        try:
            inputs = {name: self._merge([t.inputs[name] for t in tasks])
                      for name in tasks[0].inputs}
            target = next((s for s in self.options.allowed_batch_sizes if s >= size), size)
            if target > size:  # pad with copies of the first row, as TF Serving does
                inputs = {name: np.concatenate([array, np.repeat(array[:1], target - size,
                                                                 axis=0)])
                          for name, array in inputs.items()}
            outputs = queue.servable.predict(queue.signature, inputs)
            for name, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != target:
                    raise ServingError("INTERNAL", f"Batched output tensor {name} has 0th "
                                       f"dimension {array.shape[:1]}, expected {target}")
        except Exception as err:
            if len(tasks) == 1:
                tasks[0].error = from_exception(err)
            return False
        start = 0
        for task in tasks:
            task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
            start += task.size
        return True

    def _merge(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Concatenate along rows; pad inner dimensions to the largest when allowed."""
        if len({a.shape[1:] for a in arrays}) > 1:
            if len({a.ndim for a in arrays}) > 1:
                raise invalid("Batching session Run() input tensors of one name must have the "
                              "same rank")
            widest = np.max([a.shape for a in arrays], axis=0)[1:]
            arrays = [np.pad(a, [(0, 0)] + [(0, w - d) for w, d in zip(widest, a.shape[1:],
                                                                      strict=True)],
                             constant_values=a.flat[0] if a.size else 0)
                      for a in arrays]
        return np.concatenate(arrays)


class Direct:
    """Without --enable_batching: each request runs alone, with no limit on its rows."""

    def admit(self, rows: int) -> None:
        """TF Serving takes a request of any size when batching is off."""

    def predict(self, servable: Servable, signature: str,
                inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return servable.predict(signature, inputs)

    def close(self) -> None:
        """Nothing runs in the background."""
