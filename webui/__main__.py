"""Run the web UI with gunicorn, the production server the container uses too.

Usage:
    python -m webui --host 0.0.0.0 --port 8080

Configuration comes from the environment (TF_SERVING_URL, MODEL_NAME, MODEL_LABEL,
TF_SERVING_TIMEOUT, MLFLOW_TRACKING_URI, MLFLOW_UI_URL); see `webui/__init__.py`.
"""

from __future__ import annotations

import argparse

from gunicorn.app.base import BaseApplication

from contract import WEBUI_PORT
from webui import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m webui",
        description="Serve the DigitOps drawing page and its JSON API (gunicorn, one "
                    "process with threads: the app only waits on TF Serving).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 for every interface "
                             "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=WEBUI_PORT,
                        help="port to listen on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=16,
                        help="requests handled at once (default: %(default)s)")
    return parser.parse_args(argv)


class _Gunicorn(BaseApplication):
    """Gunicorn driven from Python, so `python -m webui` needs no separate command line."""

    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = create_app()  # fails here, before binding, if the environment is wrong
    _Gunicorn(app, {
        "bind": f"{args.host}:{args.port}",
        "workers": 1,  # one process keeps /metrics whole; threads do the waiting
        "worker_class": "gthread",
        "threads": args.threads,
        "accesslog": "-",
        "graceful_timeout": 5,
    }).run()


if __name__ == "__main__":
    main()
