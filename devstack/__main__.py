"""Run the DigitOps stack as local processes: MLflow, the trainer when needed, TF Serving, web UI.

Usage:
    python -m devstack up                      # what `make up` runs; Ctrl-C stops it all
    WEBUI_PORT=9090 python -m devstack up      # ports move with compose's variables
    python -m devstack down                    # stop an `up` running in the background
    MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://u:p@host/db python -m devstack up

`up` checks every port first and starts nothing if one is taken. Then, in order: the MLflow
server (SQLite store in mlruns/), `python -m training bootstrap` (trains and promotes a first
champion with the quick profile unless one exists; TRAIN_ARGS adds flags), TF Serving
(`tensorflow_model_server` when on PATH, else `python -m serving`) on models/models.config,
and the web UI, then Prometheus where a `prometheus` binary is on PATH (MONITORING=off: not).
Each waits for the one before to be ready. Logs: mlruns/logs/<role>.log.
"""

from __future__ import annotations

import argparse
import os
import sys

from devstack import stack
from devstack.config import PORTS, StackConfig, env_port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `python -m devstack up --help` for the ports and the trainer's flags.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start the stack and run it until Ctrl-C",
                             description="Check the ports, then start MLflow, the trainer "
                                         "(when there is no champion), TF Serving and the "
                                         "web UI, each once the one before is ready.")
    for setting in PORTS:
        up.add_argument(setting.flag, dest=setting.field, type=int, default=env_port(setting),
                        help=f"{setting.what} port{setting.note} (default: ${setting.env}, "
                             f"else {setting.default}; now %(default)s)")
    up.add_argument("--train-args", default=os.environ.get("TRAIN_ARGS", ""),
                    help="extra flags for `python -m training bootstrap` when there is no "
                         "champion yet, e.g. \"--train-limit 2000 --epochs 1\" (default: "
                         "$TRAIN_ARGS, else none; the profile is $TRAIN_PROFILE, else quick)")
    commands.add_parser("down", help="stop a `python -m devstack up` running in the background")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except ValueError as err:  # a bad port in the environment
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = StackConfig.from_args(args) if args.command == "up" else StackConfig()
    return stack.up(config) if args.command == "up" else stack.down(config)


if __name__ == "__main__":
    sys.exit(main())
