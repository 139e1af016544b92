"""Measure what keeping every answer in the corrections store costs a prediction.

Each /api/predict writes its answer to the store's `pending_answers` table, so that any web UI
replica can take its correction. Timed here:

1. the write alone: `FeedbackStore.keep_pending` on SQLite in a temp folder (WAL,
   synchronous=FULL, as the web UI runs it), and on PostgreSQL with --postgres-url;
2. /api/predict at concurrency 1 on two `python -m webui` in front of one model server, one
   with FEEDBACK=on (the write) and one with FEEDBACK=off (none), asked in turn so that the
   machine's noise falls on both alike. The difference of the medians is the write's cost.

Usage:
    python bench/pending_write.py --models-config /path/to/models.config
    python bench/pending_write.py --models-config ... --postgres-url postgresql+psycopg://...

Not run by CI: numbers depend on the machine and its disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import model_server, web_ui  # noqa: E402  (the repo root is put on the path)
from bench.webui_latency import DEFAULT_MNIST, bodies, test_pngs  # noqa: E402
from corrections.store import Answer, FeedbackStore  # noqa: E402
from webui import pending  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/pending_write.py",
        description="Time the pending-answer write alone and what it adds to /api/predict.")
    parser.add_argument("--models-config", required=True,
                        help="models.config whose stable version the model server serves")
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or DEFAULT_MNIST,
                        help="folder with the MNIST files (default: $MNIST_DIR, else "
                             "../shared/data/mnist)")
    parser.add_argument("--postgres-url", help="also time the write on this PostgreSQL")
    parser.add_argument("--writes", type=int, default=500,
                        help="timed store writes per database (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=300,
                        help="timed predictions per web UI (default: %(default)s)")
    return parser.parse_args(argv)


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3)}


def time_writes(url: str, count: int, png: bytes) -> dict:
    store = FeedbackStore(url)
    template = Answer(prediction_id="", predicted_at=datetime.now(UTC), model_name="mnist",
                      model_version="1", model_label="stable", digit=3,
                      probabilities=(0.1,) * 10, png=png, normalized=bytes(784))
    store.keep_pending(replace(template, prediction_id=pending.new_id()), time.time() + 900)
    took = []
    for _ in range(count):
        answer = replace(template, prediction_id=pending.new_id())
        started = time.perf_counter()
        store.keep_pending(answer, time.time() + 900)
        took.append(time.perf_counter() - started)
    store.engine.dispose()
    return percentiles(took)


def time_predictions(urls: dict[str, str], payloads: list[dict], count: int) -> dict:
    sessions = {name: requests.Session() for name in urls}
    took: dict[str, list[float]] = {name: [] for name in urls}
    for i in range(count + 20):  # the first 20 of each warm up, untimed
        for name, url in urls.items():
            started = time.perf_counter()
            response = sessions[name].post(f"{url}/api/predict", json=payloads[i % len(payloads)],
                                           timeout=60)
            elapsed = time.perf_counter() - started
            if not response.ok:
                sys.exit(f"{name}: /api/predict answered {response.status_code}: {response.text}")
            if i >= 20:
                took[name].append(elapsed)
    return {name: percentiles(seconds) for name, seconds in took.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    pngs = test_pngs(str(args.mnist_dir))
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start; PNGs are 280x280 canvas drawings "
          f"(~{statistics.median(map(len, pngs)) / 1024:.1f} KB)")
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite": f"sqlite:///{tmp}/writes.db"}
        if args.postgres_url:
            databases["postgresql"] = args.postgres_url
        for name, url in databases.items():
            result = time_writes(url, args.writes, pngs[0])
            print(f"keep_pending on {name}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
                  f"({args.writes} writes, one at a time)")
        with ExitStack() as stack:
            serving, _ = stack.enter_context(model_server(
                f"--model_config_file={args.models_config}"))
            urls = {switch: stack.enter_context(web_ui(serving, {
                "FEEDBACK": switch, "FEEDBACK_DB_URL": f"sqlite:///{tmp}/predict.db"}))
                for switch in ("on", "off")}
            result = time_predictions(urls, bodies("webui", pngs), args.requests)
    for switch, numbers in result.items():
        print(f"/api/predict FEEDBACK={switch}: p50 {numbers['p50_ms']} ms, "
              f"p99 {numbers['p99_ms']} ms ({args.requests} requests, concurrency 1)")
    print(f"the write adds {result['on']['p50_ms'] - result['off']['p50_ms']:.2f} ms at p50, "
          f"{result['on']['p99_ms'] - result['off']['p99_ms']:.2f} ms at p99 (the two web UIs "
          f"asked in turn; load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
