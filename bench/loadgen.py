"""Drive a server with Debian's C load generators, so no Python client shares its cores.

`wrk` (HTTP/1.1, keep-alive) times REST and the web UI; `h2load` (HTTP/2) times gRPC with a
framed PredictRequest and `content-type: application/grpc`. Both are bench-only:
`apt-get install wrk nghttp2-client`. Each function returns the same fields as the Python
clients of the benchmarks: p50_ms, p99_ms, per_s (requests per second) and errors.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import requests

PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client"}

# wrk's report, as one JSON line: latencies in microseconds, every kind of error counted
# (connect, read, write, timeout, and answers other than 2xx/3xx).
WRK_SCRIPT = """\
wrk.method = "POST"
local file = assert(io.open("{body}", "rb"))
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "{content_type}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {{"p50_us": %d, "p99_us": %d, "requests": %d, "duration_us": %d, "errors": %d}}\\n',
    latency:percentile(50), latency:percentile(99), summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} is not installed: apt-get install {PACKAGES[tool]}")
    return path


def wrk(url: str, body: bytes, concurrency: int, seconds: int,
        content_type: str = "application/json") -> dict:
    """POST `body` to `url` from `concurrency` keep-alive connections for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=Path(tmp) / "body", content_type=content_type))
        done = subprocess.run([require("wrk"), "-t1", f"-c{concurrency}", f"-d{seconds}s",
                               "--timeout", "30s", "-s", str(script), url],
                              capture_output=True, text=True, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRK "))
    report = json.loads(line[4:])
    return {"p50_ms": report["p50_us"] / 1e3, "p99_ms": report["p99_us"] / 1e3,
            "per_s": report["requests"] / (report["duration_us"] / 1e6),
            "errors": report["errors"], "requests": report["requests"]}


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length, the bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def failed_rpcs(metrics_url: str) -> int:
    """Requests our server answered with a status other than OK, from its Prometheus page:
    h2load sees HTTP 200 for a gRPC error, whose status travels in the trailers."""
    page = requests.get(metrics_url, timeout=10).text
    return int(sum(float(m.group(1)) for m in re.finditer(
        r'^serving_requests_total\{[^}]*status="(?!OK")[^"]*"[^}]*\} (\S+)$', page, re.M)))


def h2load(target: str, method: str, message: bytes, in_flight: int, count: int,
           metrics_url: str) -> dict:
    """Send `count` unary calls of `method` (/package.Service/Method) to `target` (host:port),
    `in_flight` at a time on one HTTP/2 connection."""
    before = failed_rpcs(metrics_url)
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log"
        body.write_bytes(grpc_frame(message))
        done = subprocess.run(
            [require("h2load"), "-n", str(count), "-c1", f"-m{in_flight}", "-t1",
             "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
             f"--log-file={log}", f"http://{target}{method}"],
            capture_output=True, text=True, check=True)
        rows = [line.split("\t") for line in log.read_text().splitlines()]
    elapsed = np.array([int(r[2]) for r in rows]) / 1e3
    http_errors = sum(r[1] != "200" for r in rows)
    finished = re.search(r"finished in ([\d.]+)(m?s)", done.stdout)
    wall = float(finished.group(1)) / (1e3 if finished.group(2) == "ms" else 1)
    return {"p50_ms": float(np.percentile(elapsed, 50)),
            "p99_ms": float(np.percentile(elapsed, 99)), "per_s": len(rows) / wall,
            "errors": http_errors + failed_rpcs(metrics_url) - before, "requests": len(rows)}
