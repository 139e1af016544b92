"""Ramp locust users against the web UI until it saturates: req/s, p50/p99 and errors per step.

Starts `python -m serving` and `python -m webui` on --models-config (or uses --url, e.g. a
`make up` stack), then runs locust headless (bench/locust/locustfile.py) for a bounded time,
prints one row per step and writes JSON. docs/scaling.md takes its HPA target and replica
counts from these numbers. Not run by CI: numbers depend on the machine.

Usage:
    python bench/webui_saturation.py --url http://localhost:8080          # make up running
    python bench/webui_saturation.py --models-config /tmp/m/models.config --steps 1 2 4 8 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import AS_THE_STACKS, model_server, web_ui  # noqa: E402  (the repo root is put on the path above)

LOCUSTFILE = ROOT / "bench" / "locust" / "locustfile.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/webui_saturation.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running web UI (default: start one on --models-config)")
    parser.add_argument("--models-config", default="models/models.config",
                        help="what the started TF Serving serves (default: %(default)s, "
                             "make up's)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                        help="locust users per step (default: 1 2 4 8 16 32)")
    parser.add_argument("--step-seconds", type=float, default=10,
                        help="how long each step lasts (default: %(default)s)")
    parser.add_argument("--out", default="results/webui_saturation.json",
                        help="where to write the JSON results (default: %(default)s)")
    return parser.parse_args(argv)


@contextlib.contextmanager
def local_web_ui(models_config: str) -> Iterator[str]:
    """TF Serving (python -m serving) and the web UI on free ports; the UI's URL."""
    with model_server(f"--model_config_file={models_config}", AS_THE_STACKS) as (serving, _), \
            web_ui(serving) as url:
        yield url


def run_locust(url: str, steps: list[int], step_seconds: float) -> list[dict]:
    """Run the locustfile headless against `url`; its per-step summary."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "steps.json"
        env = {**os.environ, "BENCH_OUT": str(out), "BENCH_STEPS": ",".join(map(str, steps)),
               "BENCH_STEP_SECONDS": str(step_seconds)}
        bound = int(len(steps) * step_seconds + 30)  # the shape ends it; this is the backstop
        subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                        "--host", url, "--only-summary", "--loglevel", "WARNING",
                        "--run-time", f"{bound}s", "--stop-timeout", "5"],
                       env=env, check=False, timeout=bound + 60)
        return json.loads(out.read_text())


def main(argv=None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(local_web_ui(args.models_config))
        requests.post(f"{url}/api/predict", json={"image": ""}, timeout=30)  # warm the routes
        rows = run_locust(url, args.steps, args.step_seconds)
    print(f"{'users':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for row in rows:
        print(f"{row['users']:>6} {row['rps']:>8} {row['p50_ms']!s:>8} {row['p99_ms']!s:>8} "
              f"{row['errors']:>7}")
    best = max(rows, key=lambda row: row["rps"])
    print(f"saturation: {best['rps']} req/s at {best['users']} users "
          f"(p99 {best['p99_ms']} ms) on {os.cpu_count()} cores")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "step_seconds": args.step_seconds, "steps": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
