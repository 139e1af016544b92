"""Measure what the web UI costs: /api/predict against TF Serving direct and the seed design.

Three ways to get a digit from a PNG, timed in one run on the same images:

  webui   POST /api/predict on `python -m webui` (waitress), which proxies to TF Serving;
  direct  POST :predict straight to the serving REST port (the floor the UI adds to);
  seed    the design the web UI replaced: a Flask route that decodes the PNG and calls Keras
          `model.predict` inside the request.

Each is warmed up, then sent --requests requests at each --concurrency; the script prints
p50/p99 latency, throughput and error counts, the ratios between the three, and writes JSON.
With --c-load each target is also driven by wrk (bench/loadgen.py, one body, --seconds per
concurrency), so the figures without a Python client on the same cores are printed beside.

Usage:
    python bench/webui_latency.py --models-config /path/to/models.config --requests 200
    python bench/webui_latency.py --models-config ... --targets direct webui --c-load

The models.config's base_path must exist on this machine (compose's models/models.config
names the container path /models/mnist). Not run by CI: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.servers import (  # noqa: E402
    LOOPBACK,
    STACK_INTRA_OP_THREADS,
    answers,
    free_port,
    model_server,
    running,
    web_ui,
)
from contract import (  # noqa: E402  (the repo root is put on the path just above)
    DEFAULT_MODELS_CONFIG,
    IMAGE_INPUT,
    IMAGE_SIGNATURE,
    MODEL_NAME,
    STABLE_LABEL,
)

DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/webui_latency.py",
        description="Time /api/predict of the web UI against a direct TF Serving :predict and "
                    "the seed design (Keras model.predict inside a Flask route).",
    )
    parser.add_argument("--models-config", default=DEFAULT_MODELS_CONFIG,
                        help="models.config to serve; its stable version is also what the "
                             "seed design loads (default: %(default)s)")
    parser.add_argument("--tf-serving-url", default=None,
                        help="use this running TF Serving instead of starting "
                             "`python -m serving` on --models-config (default: start one)")
    parser.add_argument("--mnist-dir", default=None,
                        help="folder with the MNIST files; its test digits are what is sent "
                             "(default: $MNIST_DIR, else ../shared/data/mnist)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                        help="clients sending at once, one measurement per value "
                             "(default: 1 8 32)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per target and concurrency (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed requests per target before timing (default: %(default)s)")
    parser.add_argument("--targets", nargs="+", default=["direct", "webui", "seed"],
                        choices=["direct", "webui", "seed"],
                        help="what to time (default: all three)")
    parser.add_argument("--c-load", action="store_true",
                        help="also drive each target with wrk (default: Python clients only)")
    parser.add_argument("--seconds", type=int, default=10,
                        help="how long each wrk run lasts, with --c-load (default: 10)")
    parser.add_argument("--out", default="results/webui_latency.json",
                        help="where to write the JSON results (default: %(default)s)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int,
                        default=STACK_INTRA_OP_THREADS, metavar="N",
                        help="threads inside one TensorFlow op for the started server, as "
                             "serving/tfserving.flags sets it (default: %(default)s)")
    parser.add_argument("--serve-seed", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--saved-model", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- the seed design, run in its own process by --serve-seed ---------------------------------

def serve_seed(port: int, saved_model: str) -> None:
    """The seed: Flask route, PNG decoded with Pillow, Keras `model.predict` per request."""
    import keras
    import numpy as np
    from flask import Flask, jsonify, request
    from waitress import serve

    layer = keras.layers.TFSMLayer(saved_model, call_endpoint="serving_default")
    pixels = keras.Input((28, 28), name="pixels")
    model = keras.Model(pixels, layer(pixels))
    app = Flask("seed")

    @app.post("/predict")
    def predict():
        data = request.get_json()["image"].partition(",")[2]
        image = Image.open(io.BytesIO(base64.b64decode(data))).convert("L").resize((28, 28))
        x = 255.0 - np.asarray(image, dtype=np.float32)[None]  # light ink on dark, like MNIST
        probabilities = model.predict(x, verbose=0)["probabilities"][0]
        return jsonify(digit=int(probabilities.argmax()), probabilities=probabilities.tolist())

    @app.get("/healthz")
    def healthz():
        return "ok"

    serve(app, host=LOOPBACK, port=port, threads=8)


# ---- load generation ---------------------------------------------------------------------------

def test_pngs(mnist_dir: str, count: int = 100) -> list[bytes]:
    """MNIST test digits as the page sends a drawing: dark on white, 280x280, RGBA PNG
    (a canvas's toDataURL is always RGBA)."""
    from training import data

    mnist = data.load(mnist_dir)
    pngs = []
    for pixels in mnist.x_test[:count]:
        out = io.BytesIO()
        drawing = Image.fromarray(255 - pixels).resize((280, 280), Image.BILINEAR)
        drawing.convert("RGBA").save(out, "PNG")
        pngs.append(out.getvalue())
    return pngs


def bodies(target: str, pngs: list[bytes]) -> list[dict]:
    b64 = [base64.b64encode(p).decode() for p in pngs]
    if target == "direct":
        return [{"signature_name": IMAGE_SIGNATURE, "instances": [{IMAGE_INPUT: {"b64": b}}]}
                for b in b64]
    return [{"image": "data:image/png;base64," + b} for b in b64]


def run_load(url: str, payloads: list[dict], concurrency: int, total: int) -> dict:
    """Send `total` POSTs from `concurrency` threads (one pooled session each); time them."""
    local = threading.local()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        try:
            ok = session.post(url, json=payloads[i % len(payloads)], timeout=60).ok
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": errors,
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
        "throughput_rps": round(total / wall, 1),
    }


# ---- orchestration -------------------------------------------------------------------------------

def stable_saved_model(models_config: str) -> str:
    """The SavedModel directory the config's stable label names (what the seed loads)."""
    from serving import models_config as config_file

    model = next(m for m in config_file.read(models_config).model_config_list.config
                 if m.name == MODEL_NAME)
    version = model.version_labels[STABLE_LABEL]
    path = Path(model.base_path) / str(version)
    if not path.is_dir():
        sys.exit(f"{models_config}: stable -> {path}, which does not exist on this machine")
    return str(path)


def start_servers(args, stack: ExitStack) -> dict[str, str]:
    """Start what the targets need; return each target's predict URL."""
    urls = {}
    tfs = args.tf_serving_url or stack.enter_context(
        model_server(f"--model_config_file={args.models_config}",
                     f"--tensorflow_intra_op_parallelism={args.tensorflow_intra_op_parallelism}"))[0]
    urls["direct"] = f"{tfs}/v1/models/{MODEL_NAME}/labels/{STABLE_LABEL}:predict"
    if "webui" in args.targets:
        urls["webui"] = stack.enter_context(web_ui(tfs)) + "/api/predict"
    if "seed" in args.targets:
        port = free_port()
        seed = f"http://{LOOPBACK}:{port}"
        stack.enter_context(running(
            [sys.executable, __file__, "--serve-seed", str(port),
             "--saved-model", stable_saved_model(args.models_config)],
            lambda: answers(f"{seed}/healthz"), "seed design"))
        urls["seed"] = f"{seed}/predict"
    return urls


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def compare(rows: list[dict]) -> list[dict]:
    """Ratios per concurrency: what the UI adds over direct, and what it gains over the seed."""
    by = {(r["target"], r["concurrency"]): r for r in rows}
    out = []
    for c in sorted({r["concurrency"] for r in rows}):
        ui, direct, seed = by.get(("webui", c)), by.get(("direct", c)), by.get(("seed", c))
        entry = {"concurrency": c}
        if ui and direct:
            entry["webui_over_direct_p50"] = ratio(ui["p50_ms"], direct["p50_ms"])
            entry["webui_over_direct_p99"] = ratio(ui["p99_ms"], direct["p99_ms"])
            entry["webui_over_direct_throughput"] = ratio(ui["throughput_rps"],
                                                          direct["throughput_rps"])
        if ui and seed:
            entry["seed_over_webui_p50"] = ratio(seed["p50_ms"], ui["p50_ms"])
            entry["seed_over_webui_p99"] = ratio(seed["p99_ms"], ui["p99_ms"])
            entry["webui_over_seed_throughput"] = ratio(ui["throughput_rps"],
                                                        seed["throughput_rps"])
        out.append(entry)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.serve_seed:
        serve_seed(args.serve_seed, args.saved_model)
        return
    pngs = test_pngs(args.mnist_dir or os.environ.get("MNIST_DIR") or str(DEFAULT_MNIST))
    rows, c_rows = [], []
    with ExitStack() as stack:
        urls = start_servers(args, stack)
        for target in args.targets:
            payloads = bodies(target, pngs)
            run_load(urls[target], payloads, 1, args.warmup)
            for c in args.concurrency:
                row = {"target": target, **run_load(urls[target], payloads, c, args.requests)}
                rows.append(row)
                print(f"{target:>6}  c={c:<3} p50 {row['p50_ms']:8.1f} ms  "
                      f"p99 {row['p99_ms']:8.1f} ms  {row['throughput_rps']:7.1f} req/s  "
                      f"errors {row['errors']}  (Python client)", flush=True)
                if args.c_load:
                    native = loadgen.wrk(urls[target], json.dumps(payloads[0]).encode(), c,
                                         args.seconds)
                    c_rows.append({"target": target, "concurrency": c, **native})
                    print(f"{target:>6}  c={c:<3} p50 {native['p50_ms']:8.1f} ms  "
                          f"p99 {native['p99_ms']:8.1f} ms  {native['per_s']:7.1f} req/s  "
                          f"errors {native['errors']}  (wrk)", flush=True)
    ratios = compare(rows)
    print("\nratios (webui/direct: the proxy's cost; seed/webui: what replacing the seed bought)")
    for entry in ratios:
        print("  " + "  ".join(f"{k}={v}" for k, v in entry.items()))
    result = {
        "benchmark": "webui_latency",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {k: v for k, v in vars(args).items()
                     if k not in ("serve_seed", "saved_model")},
        "rows": rows,
        "wrk_rows": c_rows,
        "ratios": ratios,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
