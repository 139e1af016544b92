"""Run the web UI with waitress, the production server the container uses too.

Usage:
    python -m webui --host 0.0.0.0 --port 8080

Waitress reads every request whole (headers and body) in its I/O loop before a worker thread
takes it, so clients that send slowly, or stop half-way, hold a socket and not a thread:
`/healthz` and predictions keep answering (gunicorn's threads were each held by one).

Configuration comes from the environment (TF_SERVING_URL, MODEL_NAME, MODEL_LABEL,
TF_SERVING_TIMEOUT, MLFLOW_TRACKING_URI, MLFLOW_UI_URL); see `webui/__init__.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import waitress
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from contract import WEBUI_PORT
from webui import create_app, messages

CONNECTION_LIMIT = 1000  # open sockets; each costs a buffer, not a thread
IDLE_TIMEOUT = 30  # seconds a connection may send nothing before it is closed
# Flask answers 413 past MAX_CONTENT_LENGTH; past this waitress stops reading first, and
# answers 413 itself (in JSON too: JsonErrorTask).
BODY_LIMIT_FACTOR = 2
QUEUE_WARNING_EVERY = 10.0  # seconds between waitress's "Task queue depth" warnings


class EveryFewSeconds(logging.Filter):
    """Let one record through per `interval` seconds: waitress warns once per queued request."""

    def __init__(self, interval: float):
        super().__init__()
        self.interval = interval
        self.next_at = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + self.interval
        return True


class JsonErrorTask(ErrorTask):
    """Waitress's own refusals, e.g. a body past its limit (chunked or not), in the API's JSON.

    Waitress answers these itself, before the app sees the request, in plain text.
    """

    body_limit = 0  # the app's MAX_CONTENT_LENGTH, set by `serve`

    def execute(self):
        error = self.request.error
        text = messages.BODY_TOO_LARGE.format(limit=self.body_limit) if error.code == 413 \
            else f"{error.reason}: {error.body}"
        body = json.dumps({"error": text}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"),
                                      ("X-Content-Type-Options", "nosniff")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):
    error_task_class = JsonErrorTask


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m webui",
        description="Serve the DigitOps drawing page and its JSON API (waitress, one "
                    "process with threads: the app only waits on TF Serving).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 for every interface "
                             "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=WEBUI_PORT,
                        help="port to listen on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16,
                        help="requests handled at once (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = create_app(bind_host=args.host)  # fails here, before binding, if the env is wrong
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("waitress.queue").addFilter(EveryFewSeconds(QUEUE_WARNING_EVERY))
    JsonErrorTask.body_limit = app.config["MAX_CONTENT_LENGTH"]
    sockets: dict = {}  # waitress's socket map: the listening sockets' servers, then channels
    server = waitress.create_server(
        app, map=sockets, host=args.host, port=args.port,
        threads=args.threads,  # one process keeps /metrics whole; threads do the waiting
        connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_TIMEOUT,
        max_request_body_size=BODY_LIMIT_FACTOR * app.config["MAX_CONTENT_LENGTH"],
        ident="digitops-webui",
    )
    for listener in sockets.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = Channel
    server.print_listen("Serving on http://{}:{}")
    server.run()


if __name__ == "__main__":
    main()
