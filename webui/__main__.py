"""Run the web UI with waitress, the production server the container uses too.

Usage:
    python -m webui --host 0.0.0.0 --port 8080

Waitress reads every request whole (headers and body) in its I/O loop before a worker thread
takes it, so clients that send slowly, or stop half-way, hold a socket and not a thread:
`/healthz` and predictions keep answering (gunicorn's threads were each held by one). A socket
is still held, so each request must arrive whole within --request-timeout of its first byte
(waitress bounds only the time between two bytes), and the sockets are many and cheap: poll,
not select, which stops at 1,024.

Configuration comes from the environment (TF_SERVING_URL, MODEL_NAME, MODEL_LABEL,
TF_SERVING_TIMEOUT, MLFLOW_TRACKING_URI, MLFLOW_UI_URL); see `webui/__init__.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time

import waitress
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from contract import LOOPBACK, WEBUI_PORT
from webui import create_app, messages

CONNECTION_LIMIT = 4000  # open sockets; each costs a few KB of buffers, not a thread
IDLE_TIMEOUT = 30  # seconds a connection may send nothing before it is closed
REQUEST_TIMEOUT = 15.0  # seconds a request may take to arrive whole, however it trickles
SLOW_CLIENT_LOG_EVERY = 10.0  # seconds between "closed a slow request" log lines

slow_clients = logging.getLogger("webui.slow_clients")
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


class TimedParser(HTTPRequestParser):
    """Waitress's request parser, remembering when the request's first byte came."""

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()


class Channel(HTTPChannel):
    """A client's connection: whole requests within `request_timeout`, errors in JSON."""

    error_task_class = JsonErrorTask
    parser_class = TimedParser
    request_timeout = REQUEST_TIMEOUT  # set by `main` from --request-timeout

    def readable(self) -> bool:
        """Asked by the I/O loop at least once a second: close a request arriving too slowly."""
        request = self.request
        if request is not None and not request.completed and not self.will_close and \
                time.monotonic() - request.started > self.request_timeout:
            slow_clients.info("closed a request still arriving after %g s (from %s)",
                              self.request_timeout, self.addr[0] if self.addr else "?")
            self.will_close = True
        return super().readable()


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m webui",
        description="Serve the DigitOps drawing page and its JSON API (waitress, one "
                    "process with threads: the app only waits on TF Serving).")
    parser.add_argument("--host", default=LOOPBACK,
                        help="address to listen on; 0.0.0.0 for every interface "
                             "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=WEBUI_PORT,
                        help="port to listen on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16,
                        help="requests handled at once (default: %(default)s)")
    parser.add_argument("--request-timeout", type=positive_seconds, default=REQUEST_TIMEOUT,
                        metavar="SECONDS",
                        help="a request must arrive whole (headers and body) within this "
                             "many seconds of its first byte, or its connection is closed "
                             "(default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = create_app(bind_host=args.host)  # fails here, before binding, if the env is wrong
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("waitress.queue").addFilter(EveryFewSeconds(QUEUE_WARNING_EVERY))
    slow_clients.addFilter(EveryFewSeconds(SLOW_CLIENT_LOG_EVERY))
    Channel.request_timeout = args.request_timeout
    _allow_open_files(CONNECTION_LIMIT + 64)  # + the listening sockets, the store, logs...
    JsonErrorTask.body_limit = app.config["MAX_CONTENT_LENGTH"]
    sockets: dict = {}  # waitress's socket map: the listening sockets' servers, then channels
    server = waitress.create_server(
        app, map=sockets, host=args.host, port=args.port,
        threads=args.threads,  # one process keeps /metrics whole; threads do the waiting
        connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_TIMEOUT,
        asyncore_use_poll=True,  # select() cannot watch descriptors past 1,024
        max_request_body_size=BODY_LIMIT_FACTOR * app.config["MAX_CONTENT_LENGTH"],
        ident="digitops-webui",
    )
    for listener in sockets.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = Channel
    server.print_listen("Serving on http://{}:{}")
    server.run()


def _allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files toward `wanted` (many shells start at 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


if __name__ == "__main__":
    main()
