"""Latency and throughput of :predict on loopback, against calling the SavedModel in-process.

For each signature (`serving_default` with `pixels` JSON, `predict_image` with b64 PNGs),
batch size (1, 8, 32) and client concurrency (1, 8, 32) it sends warm-up requests, then
times --requests requests and prints p50, p99 and rows per second, each with its ratio to
the floor: the same signature called in-process on the same batch, measured in the same run.
The JSON lands in results/. Client and server share the machine, so on a small one the
ratios at high concurrency include the client's own CPU use.

With --targets it measures instead what issue 13 asks of our server, each against its floor:
gRPC `serving_default` batch 1 at c=1, and `predict_image` batch 1 at c=1 and c=32 with and
without --enable_batching (serving/batching.config), printing each target with its ratio.

With --c-load it times our server as the stacks run it (serving/batching.config, their
TensorFlow threading) with Python clients and with C ones (bench/loadgen.py: wrk for REST,
h2load for gRPC), so the figures without a Python client on the same cores sit beside them:
`predict_image` in process (p50 at batch 1, rows/s at batch 32), REST c=1 p50 and c=32
rows/s, gRPC with 32 calls in flight.

Usage:
    .venv/bin/python bench/serving_latency.py                  # exports a model, starts ours
    .venv/bin/python bench/serving_latency.py --targets        # gRPC and batching targets
    .venv/bin/python bench/serving_latency.py --c-load         # Python and C clients
    .venv/bin/python bench/serving_latency.py --url http://localhost:8501 \\
        --model-dir models/mnist/1                             # any running TF Serving
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402  (the repo root is put on the path above)
from bench.servers import STACK_INTRA_OP_THREADS, model_server  # noqa: E402
from contract import IMAGE_INPUT, IMAGE_SIGNATURE, MODEL_NAME, PIXELS_INPUT  # noqa: E402

BATCHES = (1, 8, 32)
CONCURRENCY = (1, 8, 32)
SIGNATURES = ("serving_default", IMAGE_SIGNATURE)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage:")[1])
    parser.add_argument("--url", help="a running TF Serving's REST URL; needs --model-dir "
                                      "(default: start python -m serving on a free port)")
    parser.add_argument("--model-dir", type=Path,
                        help="the served SavedModel version folder, for the in-process floor "
                             "(default: export an untrained convnet to a temp folder)")
    parser.add_argument("--model", default=MODEL_NAME, help=f"model name (default: {MODEL_NAME})")
    parser.add_argument("--requests", type=int, default=40,
                        help="timed requests per cell (default: 40)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "serving_latency.json",
                        help="where the JSON goes (default: results/serving_latency.json)")
    parser.add_argument("--targets", action="store_true",
                        help="measure issue 13's gRPC and batching targets on our server "
                             "(default: the full matrix)")
    parser.add_argument("--c-load", action="store_true",
                        help="time our server with Python clients and with wrk and h2load "
                             "(default: the full matrix, Python clients only)")
    parser.add_argument("--seconds", type=int, default=10,
                        help="how long each wrk run lasts, with --c-load (default: 10)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0, metavar="N",
                        help="threads inside one TensorFlow op, for our server and the floor "
                             "alike (0: TensorFlow chooses; default: 0)")
    args = parser.parse_args(argv)
    if (args.targets or args.c_load) and args.url:
        parser.error("--targets and --c-load start our own server")
    if args.c_load and not args.tensorflow_intra_op_parallelism:
        args.tensorflow_intra_op_parallelism = STACK_INTRA_OP_THREADS  # as the stacks run it
    if args.url and not args.model_dir:
        parser.error("--url needs --model-dir: the floor calls the same SavedModel in-process")
    return args


def sample_digits(count: int) -> np.ndarray:
    """Real MNIST test digits when the files are at hand, else a drawn-looking blob."""
    try:
        from training import data

        return data.load(os.environ.get("MNIST_DIR") or ROOT.parent / "shared" / "data" /
                         "mnist").x_test[:count]
    except Exception:  # any failure to find MNIST: a synthetic stroke times the same
        digits = np.zeros((count, 28, 28), dtype=np.uint8)
        digits[:, 6:22, 12:16] = 255
        return digits


def png_b64(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def export_untrained(folder: Path) -> Path:
    from training import models
    from training.export import export_saved_model

    return export_saved_model(models.build("convnet"), folder / MODEL_NAME / "1")


def server_flags(args) -> list[str]:
    """What our server is started with besides the model: the threading the floor has too."""
    threads = args.tensorflow_intra_op_parallelism
    return [f"--tensorflow_intra_op_parallelism={threads}"] if threads else []


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50)) * 1e3, float(np.percentile(seconds, 99)) * 1e3


def floor(model_dir: Path, signature: str, feed, batch: int, count: int) -> dict:
    """The in-process floor: the SavedModel's signature called directly, one at a time."""
    import tensorflow as tf

    function = tf.saved_model.load(str(model_dir)).signatures[signature]
    tensor = {k: tf.constant(v) for k, v in feed.items()}
    for _ in range(5):
        function(**tensor)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        function(**tensor)
        times.append(time.perf_counter() - started)
    p50, p99 = percentiles(times)
    return {"p50_ms": p50, "p99_ms": p99, "rows_per_s": batch * count / sum(times)}


def served(url: str, body: bytes, concurrency: int, count: int, batch: int) -> dict:
    """Time `count` POSTs from `concurrency` threads, each with its own keep-alive session."""
    local = threading.local()

    def call() -> bool:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        r = session.post(url, data=body, headers={"Content-Type": "application/json"},
                         timeout=60)
        return r.status_code == 200

    return timed(call, concurrency, count, batch)


def grpc_served(target: str, request, concurrency: int, count: int, batch: int) -> dict:
    """Time `count` Predict calls from `concurrency` threads, each with its own channel."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    local = threading.local()

    def call() -> bool:
        stub = getattr(local, "stub", None)
        if stub is None:
            stub = local.stub = prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(target))
        try:
            stub.Predict(request, timeout=60)
        except grpc.RpcError:
            return False
        return True

    return timed(call, concurrency, count, batch)


def timed(call, concurrency: int, count: int, batch: int) -> dict:
    """Run `call` count times from `concurrency` threads after a warm-up; latency and rate."""
    def one(_) -> tuple[float, bool]:
        started = time.perf_counter()
        ok = call()
        return time.perf_counter() - started, ok

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(2 * concurrency)))  # warm-up: connections and TF graphs
        started = time.perf_counter()
        results = list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
    p50, p99 = percentiles([t for t, _ in results])
    errors = sum(not ok for _, ok in results)
    return {"p50_ms": p50, "p99_ms": p99, "rows_per_s": batch * count / wall, "errors": errors}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tensorflow_intra_op_parallelism:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(
            args.tensorflow_intra_op_parallelism)
    digits = sample_digits(max(BATCHES))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or export_untrained(Path(tmp))
        if args.targets:
            return targets(args, model_dir, digits)
        if args.c_load:
            return c_load(args, model_dir, digits)
        with contextlib.ExitStack() as stack:
            url = args.url or stack.enter_context(model_server(
                f"--model_name={args.model}", f"--model_base_path={model_dir.parent}",
                *server_flags(args), model_name=args.model))[0]
            cells = run_matrix(args, url.rstrip("/"), model_dir, digits)
    report = {"url": args.url or "python -m serving (local)", "host": platform.node(),
              "cpus": os.cpu_count(), "requests_per_cell": args.requests, "cells": cells}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


def run_matrix(args, url: str, model_dir: Path, digits: np.ndarray) -> list[dict]:
    predict_url = f"{url}/v1/models/{args.model}:predict"
    cells = []
    print(f"{'signature':16} {'batch':>5} {'conc':>4} {'p50 ms':>14} {'p99 ms':>14} "
          f"{'rows/s':>14} err")
    for signature in SIGNATURES:
        for batch in BATCHES:
            rows = digits[:batch]
            if signature == IMAGE_SIGNATURE:
                images = [png_b64(d) for d in rows]
                body = {"signature_name": signature,
                        "instances": [{IMAGE_INPUT: {"b64": b}} for b in images]}
                feed = {IMAGE_INPUT: np.array([base64.b64decode(b) for b in images],
                                              dtype=object)}
            else:
                body = {"instances": [{PIXELS_INPUT: d.tolist()} for d in rows]}
                feed = {PIXELS_INPUT: rows.astype(np.float32)}
            base = floor(model_dir, signature, feed, batch, args.requests)
            print(f"{signature:16} {batch:5d} {'floor':>5}{base['p50_ms']:7.2f}{'':7}"
                  f"{base['p99_ms']:8.2f}{'':7}{base['rows_per_s']:8.0f}")
            encoded = json.dumps(body).encode()
            for concurrency in CONCURRENCY:
                cell = served(predict_url, encoded, concurrency, args.requests, batch)
                ratio = {"p50": cell["p50_ms"] / base["p50_ms"],
                         "p99": cell["p99_ms"] / base["p99_ms"],
                         "rows_per_s": cell["rows_per_s"] / base["rows_per_s"]}
                cells.append({"signature": signature, "batch": batch,
                              "concurrency": concurrency, **cell,
                              "floor": base, "ratio_to_floor": ratio})
                print(f"{signature:16} {batch:5d} {concurrency:4d} "
                      f"{cell['p50_ms']:8.2f} x{ratio['p50']:<5.1f}"
                      f"{cell['p99_ms']:8.2f} x{ratio['p99']:<5.1f}"
                      f"{cell['rows_per_s']:8.0f} x{ratio['rows_per_s']:<5.2f}"
                      f"{cell['errors']:3d}")
    return cells


def targets(args, model_dir: Path, digits: np.ndarray) -> int:
    """Issue 13's targets for our server: gRPC, and batching against no batching."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    pixels = digits[:1].astype(np.float32)
    image = png_b64(digits[0])
    image_body = json.dumps({"signature_name": IMAGE_SIGNATURE,
                             "instances": [{IMAGE_INPUT: {"b64": image}}]}).encode()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.inputs[PIXELS_INPUT].CopyFrom(tf.make_tensor_proto(pixels))
    floors = {"pixels": floor(model_dir, "serving_default", {PIXELS_INPUT: pixels}, 1,
                              args.requests),
              "image": floor(model_dir, IMAGE_SIGNATURE, {IMAGE_INPUT: np.array(
                  [base64.b64decode(image)], dtype=object)}, 1, args.requests)}
    loaded = max(args.requests, 320)  # c=32 needs enough requests to reach a steady state
    cells = {}
    batching = ["--enable_batching",
                f"--batching_parameters_file={ROOT / 'serving' / 'batching.config'}"]
    for mode, flags in (("plain", []), ("batching", batching)):
        with model_server(f"--model_name={args.model}", f"--model_base_path={model_dir.parent}",
                          *flags, *server_flags(args), model_name=args.model) as (url, target):
            predict_url = f"{url}/v1/models/{args.model}:predict"
            if mode == "plain":
                cells["grpc pixels c=1"] = grpc_served(target, request, 1, args.requests, 1)
            for concurrency, count in ((1, args.requests), (32, loaded)):
                cells[f"{mode} image c={concurrency}"] = served(predict_url, image_body,
                                                               concurrency, count, 1)
    for name, cell in cells.items():
        print(f"{name:22} p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms  "
              f"{cell['rows_per_s']:7.0f} rows/s  errors {cell['errors']}")
    for name, base in floors.items():
        print(f"{'floor ' + name:22} p50 {base['p50_ms']:7.2f} ms  p99 {base['p99_ms']:7.2f} ms  "
              f"{base['rows_per_s']:7.0f} rows/s")
    checks = [
        ("gRPC serving_default b1 c=1: p50 / floor p50", "<= 2.0",
         cells["grpc pixels c=1"]["p50_ms"] / floors["pixels"]["p50_ms"], 2.0),
        ("batching predict_image b1 c=32: rows/s / floor rows/s", ">= 1.5",
         cells["batching image c=32"]["rows_per_s"] / floors["image"]["rows_per_s"], -1.5),
        ("batching c=32 p99 / no batching c=32 p99", "<= 2.0",
         cells["batching image c=32"]["p99_ms"] / cells["plain image c=32"]["p99_ms"], 2.0),
        ("batching c=1 p50 - no batching c=1 p50 (ms)", "<= 0.5",
         cells["batching image c=1"]["p50_ms"] - cells["plain image c=1"]["p50_ms"], 0.5),
    ]
    print()
    for name, goal, value, limit in checks:
        met = value <= limit if limit > 0 else value >= -limit
        print(f"{name:55} {value:6.2f}  target {goal:7} {'met' if met else 'MISSED'}")
    report = {"host": platform.node(), "cpus": os.cpu_count(), "floors": floors,
              "cells": cells, "targets": [{"what": n, "target": g, "value": v}
                                          for n, g, v, _ in checks]}
    out = args.out.with_name("serving_targets.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


def c_load(args, model_dir: Path, digits: np.ndarray) -> int:
    """predict_image, batch 1, timed by Python clients and by wrk / h2load, side by side."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    image = base64.b64decode(png_b64(digits[0]))
    body = json.dumps({"signature_name": IMAGE_SIGNATURE,
                       "instances": [{IMAGE_INPUT: {"b64": png_b64(digits[0])}}]}).encode()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.model_spec.signature_name = IMAGE_SIGNATURE
    request.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
    floor_1 = floor(model_dir, IMAGE_SIGNATURE, {IMAGE_INPUT: np.array([image], object)}, 1,
                    args.requests)
    floor_32 = floor(model_dir, IMAGE_SIGNATURE, {IMAGE_INPUT: np.array(
        [base64.b64decode(png_b64(d)) for d in digits[:32]], object)}, 32, args.requests)
    loaded = max(args.requests, 320)
    flags = ["--enable_batching",
             f"--batching_parameters_file={ROOT / 'serving' / 'batching.config'}",
             f"--monitoring_config_file={ROOT / 'serving' / 'monitoring.config'}"]
    cells = {}
    with model_server(f"--model_name={args.model}", f"--model_base_path={model_dir.parent}",
                      *flags, *server_flags(args), model_name=args.model) as (url, target):
        predict_url = f"{url}/v1/models/{args.model}:predict"
        metrics_url = f"{url}/monitoring/prometheus/metrics"
        cells["REST c=1"] = (served(predict_url, body, 1, args.requests, 1),
                             loadgen.wrk(predict_url, body, 1, args.seconds))
        cells["REST c=32"] = (served(predict_url, body, 32, loaded, 1),
                              loadgen.wrk(predict_url, body, 32, args.seconds))
        loadgen.h2load(target, PREDICT_METHOD, request.SerializeToString(), 32, 64,
                       metrics_url)  # warm-up
        cells["gRPC 32 in flight"] = (
            grpc_served(target, request, 32, loaded, 1),
            loadgen.h2load(target, PREDICT_METHOD, request.SerializeToString(), 32,
                           10 * loaded, metrics_url))
    print(f"\npredict_image, batch 1 (a 28x28 PNG), our server with serving/batching.config and "
          f"--tensorflow_intra_op_parallelism={args.tensorflow_intra_op_parallelism}; "
          f"{os.cpu_count()} CPUs shared by server and client")
    print(f"in process: p50 {floor_1['p50_ms']:.2f} ms at batch 1, "
          f"{floor_32['rows_per_s']:.0f} rows/s at batch 32 (one calling thread)")
    print(f"{'':20} {'Python client':>30}   {'C client (wrk, h2load)':>30}")
    for name, (python, native) in cells.items():
        python_rate = python["rows_per_s"]
        print(f"{name:20} {python['p50_ms']:8.2f} ms p50 {python_rate:8.0f} rows/s "
              f"err {python['errors']:<3}  {native['p50_ms']:8.2f} ms p50 "
              f"{native['per_s']:8.0f} rows/s err {native['errors']}")
    report = {"host": platform.node(), "cpus": os.cpu_count(),
              "floor": {"batch_1": floor_1, "batch_32": floor_32},
              "cells": {name: {"python": python, "c": native}
                        for name, (python, native) in cells.items()}}
    out = args.out.with_name("serving_c_load.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
