"""The trainer's command line: train, promote, list, bootstrap, feedback.

    python -m training train --model convnet --epochs 3
    python -m training promote --version 2
    python -m training list
    python -m training feedback stats

Settings come from the environment (MLFLOW_TRACKING_URI, MNIST_DIR, MODELS_DIR, ...: see
.env.example). Heavy imports wait until a command runs, so --help is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from contract import MLFLOW_PORT
from training import profiles
from training.registry import DEFAULT_MIN_ACCURACY, DEFAULT_TOLERANCE  # imports no MLflow


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_training_flags(parser: argparse.ArgumentParser, profile_default: str) -> None:
    def default(name: str) -> str:
        return f"(default: the profile's, {profiles.describe(name)})"

    parser.add_argument("--profile", choices=tuple(profiles.PROFILES), default=profile_default,
                        help="preset of the flags below: quick (minutes) or full (best "
                             f"accuracy) (default: {profile_default})")
    parser.add_argument("--model", choices=profiles.ARCHITECTURE_NAMES,
                        help=f"architecture {default('model')}")
    parser.add_argument("--epochs", type=_positive_int,
                        help=f"passes over the training images {default('epochs')}")
    parser.add_argument("--batch-size", type=_positive_int,
                        help=f"images per training step {default('batch_size')}")
    parser.add_argument("--learning-rate", type=_positive_float,
                        help=f"peak of the warm-up + cosine schedule {default('learning_rate')}")
    parser.add_argument("--width", type=_positive_int,
                        help="filters in the first conv layer; later ones scale with it "
                             + default("width"))
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction,
                        help=f"random shifts, turns and zooms while training {default('augment')}")
    parser.add_argument("--redraw", type=_fraction,
                        help="share of each batch redrawn along the digit's skeleton with a "
                             "random round pen, slant and bend, like digits drawn on the page "
                             + default("redraw"))
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction,
                        help="redraw along a skeleton with thinning's spurs pruned and its pixel "
                             "staircase smoothed, whose strokes run on past their ends "
                             + default("refine"))
    parser.add_argument("--real", action=argparse.BooleanOptionalAction,
                        help="add USPS train (7,291 digits by other writers, drawn on the canvas "
                             "and normalised as the served graph does) to the training images "
                             + default("real"))
    parser.add_argument("--conventions", action=argparse.BooleanOptionalAction,
                        help="redraw some 1s with a flag, 7s crossed and 9s with a curled tail, "
                             "as much of the world writes them " + default("conventions"))
    parser.add_argument("--train-limit", type=_positive_int,
                        help="train on the first N shuffled images (default: all 60,000)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")


def _add_learning_flags(parser: argparse.ArgumentParser, from_champion: bool = False) -> None:
    """How a run learns from the corrections: shared by train and retrain."""
    parser.add_argument("--feedback-weight", type=_positive_int,
                        help="with --feedback: each correction trains this many times per "
                             "epoch, every copy turned and redrawn its own way (default: "
                             f"{profiles.DEFAULT_FEEDBACK_WEIGHT}, "
                             f"{profiles.FINE_TUNE_FEEDBACK_WEIGHT} with --from-champion)")
    schedule = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in profiles.FINE_TUNE.items())
    parser.add_argument("--from-champion", action=argparse.BooleanOptionalAction,
                        default=from_champion,
                        help="start from the champion's weights and fine-tune briefly on the "
                             f"corrections plus a replay sample of MNIST ({schedule} unless "
                             "given), keeping the champion's batch statistics and ending "
                             f"{profiles.FINE_TUNE_KEEP:g} of the way from its weights to the "
                             f"tuned ones (default: {'on' if from_champion else 'off'})")


def build_parser() -> argparse.ArgumentParser:
    default_profile = os.environ.get("TRAIN_PROFILE") or profiles.DEFAULT_PROFILE
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `python -m training COMMAND --help` for a command's flags.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train, track in MLflow, register and publish")
    _add_training_flags(train, default_profile)
    train.add_argument("--feedback", action="store_true",
                       help="add the page's corrections (FEEDBACK_DB_URL) to the training "
                            "split, all but a held-out share (default: off)")
    _add_learning_flags(train)

    promote = commands.add_parser("promote", help="gate a version and make it the champion")
    promote.add_argument("--version", type=_positive_int,
                         help="registered version (default: the newest)")
    promote.add_argument("--min-accuracy", type=_fraction, default=DEFAULT_MIN_ACCURACY,
                         help="refuse below this test accuracy (default: %(default)s)")
    promote.add_argument("--tolerance", type=_fraction, default=DEFAULT_TOLERANCE,
                         help="refuse a version worse than the champion on MNIST test, the "
                              "drawn digits, USPS test or Semeion by more than this fraction "
                              "(default: %(default)s, 0.1 point)")
    promote.add_argument("--canary", action="store_true",
                         help="make it the challenger (label canary) instead of the champion")
    promote.add_argument("--force", action="store_true",
                         help="skip the accuracy floor and the comparison with the "
                              "champion: the rollback to any published version")

    commands.add_parser("list", help="registered versions, accuracy, aliases, publication")

    retrain = commands.add_parser(
        "retrain", help="when enough corrections arrived, train a challenger on them, serve "
                        "it as canary, then promote it or say why not (idempotent: schedule it)",
        description="When at least RETRAIN_MIN_CORRECTIONS corrections arrived since the "
                    "champion was trained (and since the last retrain), train a challenger "
                    "with them, publish it, serve it as canary and judge it with promote's "
                    "gate; promote it, or keep the champion and record why (version tags "
                    "retrain.decision and retrain.reason, `feedback stats`). Otherwise do "
                    "nothing. Two at once: the second finds the lock held and does nothing.")
    _add_training_flags(retrain, default_profile)
    _add_learning_flags(retrain, from_champion=True)
    retrain.add_argument("--min-corrections", type=_positive_int,
                         help="new corrections that start a retrain (default: "
                              "RETRAIN_MIN_CORRECTIONS, else 200)")
    retrain.add_argument("--min-accuracy", type=_fraction, default=DEFAULT_MIN_ACCURACY,
                         help="refuse a challenger below this test accuracy (default: "
                              "%(default)s)")
    retrain.add_argument("--tolerance", type=_fraction, default=DEFAULT_TOLERANCE,
                         help="refuse a challenger worse than the champion by more than this "
                              "fraction on any gated figure (default: %(default)s)")
    retrain.add_argument("--every", type=_positive_int, metavar="SECONDS",
                         help="keep running: retrain, then again every SECONDS, whatever "
                              "one run met (compose profile retrain, make up with "
                              "RETRAIN_INTERVAL) (default: once, for cron and CronJobs)")

    bootstrap = commands.add_parser(
        "bootstrap", help="train and promote a first champion, unless one exists")
    _add_training_flags(bootstrap, default_profile)
    bootstrap.add_argument("--min-accuracy", type=_fraction, default=DEFAULT_MIN_ACCURACY,
                           help="the first champion's quality gate (default: %(default)s)")

    feedback = commands.add_parser(
        "feedback", help="the corrections people made on the page: stats, export")
    actions = feedback.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    stats = actions.add_parser("stats", help="totals, by digit, and how often each version "
                                             "was right on corrected drawings")
    stats.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    export = actions.add_parser("export", help="write the corrections as IDX files or npz")
    export.add_argument("--out", default="feedback-export",
                        help="folder to write into (default: %(default)s)")
    export.add_argument("--format", choices=("idx", "npz"), default="idx",
                        help="MNIST-style gzipped IDX files, or one npz (default: %(default)s)")
    return parser


def _training_kwargs(args) -> dict:
    hyperparams = {name: getattr(args, name) for name in profiles.HYPERPARAM_NAMES}
    return {"profile": args.profile, **hyperparams}


def _mlflow_hint(settings, result) -> str:
    """Where to see the run: a link that opens MLflow on it (in model-training mode)."""
    from contract import mlflow_run_url
    from training.tracking import is_remote

    if is_remote(settings.tracking_uri):
        return mlflow_run_url(settings.tracking_uri, result.experiment_id, result.run_id)
    link = mlflow_run_url(f"http://localhost:{MLFLOW_PORT}", result.experiment_id, result.run_id)
    return (f"mlflow ui --backend-store-uri {settings.tracking_uri} --port {MLFLOW_PORT}, "
            f"then {link}")


def _percent(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "-"


def cmd_train(settings, args) -> int:
    from training import train

    result = train.run(settings, use_feedback=args.feedback, feedback_weight=args.feedback_weight,
                       from_champion=args.from_champion, **_training_kwargs(args))
    print(f"\nrun id         {result.run_id}"
          f"\nversion        {settings.model_name} v{result.version}"
          f"\ntest accuracy  {result.test_accuracy:.4f}"
          f"\ndrawn digits   {_percent(result.canvas_accuracy)} (canvas_accuracy)"
          f"\nreal writers   USPS test {_percent(result.real_accuracy_usps)}, Semeion "
          f"{_percent(result.real_accuracy_semeion)} (real_accuracy_usps, _semeion)"
          f"\npublished      {result.published_dir}"
          f"\nMLflow         {_mlflow_hint(settings, result)}"
          f"\nnext           python -m training promote --version {result.version}")
    return 0


def cmd_promote(settings, args) -> int:
    from training import registry

    row = registry.promote(settings, args.version, args.min_accuracy, args.canary, args.force,
                           tolerance=args.tolerance)
    label = "canary (challenger)" if args.canary else "stable (champion)"
    if args.force:
        print(f"--force: skipped the accuracy floor ({args.min_accuracy}) and the comparison "
              "with the champion")
    print(f"version {row.version} (test accuracy {row.test_accuracy:.4f}, drawn digits "
          f"{_percent(row.canvas_accuracy)}) is now {label}; wrote {settings.models_config}")
    return 0


def cmd_list(settings, args) -> int:
    from training import registry, tracking

    rows = registry.versions(tracking.connect(settings), settings)
    if not rows:
        print("no registered versions yet: python -m training train")
        return 0
    print(f"{'version':>7}  {'accuracy':>8}  {'drawn':>7}  {'USPS':>7}  {'Semeion':>7}  "
          f"{'published':9}  {'aliases':20}  run id")
    for row in rows:
        accuracy = f"{row.test_accuracy:.4f}" if row.test_accuracy is not None else "-"
        print(f"{row.version:>7}  {accuracy:>8}  {_percent(row.canvas_accuracy):>7}  "
              f"{_percent(row.real_accuracy_usps):>7}  {_percent(row.real_accuracy_semeion):>7}  "
              f"{'yes' if row.published else 'no':9}  {','.join(row.aliases) or '-':20}  "
              f"{row.run_id}")
    return 0


def cmd_bootstrap(settings, args) -> int:
    from contract import CHAMPION_ALIAS
    from training import registry, tracking, train

    client = tracking.connect(settings)
    champion = registry.alias_version(client, settings, CHAMPION_ALIAS)
    if champion is not None:
        registry.sync_serving_config(client, settings)
        print(f"champion exists: {settings.model_name} v{champion}; nothing to train")
        return 0
    result = train.run(settings, **_training_kwargs(args))
    registry.promote(settings, result.version, args.min_accuracy, client=client)
    print(f"trained and promoted {settings.model_name} v{result.version} "
          f"(test accuracy {result.test_accuracy:.4f})")
    return 0


def cmd_feedback(settings, args) -> int:
    import json
    from pathlib import Path

    from training import feedback

    store = feedback.open_store(settings)
    if args.feedback_command == "export":
        for path in feedback.export(store, Path(args.out), args.format):
            print(path)
        return 0
    summary = {**feedback.stats(store), "retrain": _retrain_decisions(settings)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"store       {summary['store']}\n"
          f"stored      {summary['total']} answers people judged, {summary['corrected']} "
          f"corrected, {summary['held_out']} held out for evaluation\n")
    print(f"{'digit':>7}  {'drawn':>6}  {'answered right':>14}")
    for digit, row in summary["by_digit"].items():
        print(f"{digit:>7}  {row['total']:>6}  {_percent(row['accuracy']):>14}")
    print(f"\n{'version':>7}  {'answered':>8}  {'as challenger':>13}  {'right':>6}  accuracy")
    for version, row in summary["by_version"].items():
        print(f"{version:>7}  {row['answered']:>8}  {row['as_challenger']:>13}  "
              f"{row['right']:>6}  {_percent(row['accuracy'])}")
    if summary["retrain"] is None:
        print("\nretrain     MLflow cannot be reached: its decisions are not shown")
    for row in (summary["retrain"] or [])[:RETRAIN_DECISIONS_SHOWN]:
        print(f"\nretrain     version {row['version']} {row['decision']} ({row['at']}, "
              f"{row['corrections']} new corrections): {row['reason']}")
    return 0


RETRAIN_DECISIONS_SHOWN = 3  # the newest; --json lists all


def _retrain_decisions(settings) -> list[dict] | None:
    """`retrain`'s decisions, newest first, from the versions' tags; None without MLflow."""
    from pathlib import Path

    from training import retrain, tracking

    local = settings.tracking_uri.removeprefix("sqlite:///")
    if local != settings.tracking_uri and not Path(local).exists():
        return []  # no MLflow store here yet, so no decisions: do not create one
    try:
        return retrain.decisions(tracking.connect(settings), settings)
    except tracking.TrackingError:
        return None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def cmd_retrain(settings, args) -> int:
    import logging

    from training import retrain

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    min_corrections = args.min_corrections or settings.retrain_min_corrections

    def once() -> None:
        retrain.run(settings, min_corrections=min_corrections, tolerance=args.tolerance,
                    min_accuracy=args.min_accuracy, feedback_weight=args.feedback_weight,
                    from_champion=args.from_champion, **_training_kwargs(args))

    if not args.every:
        once()
        return 0
    while True:  # a schedule outlives one failed run: MLflow restarting, a store down
        try:
            once()
        except _retrain_survives() as err:
            logging.getLogger("training.retrain").error("retrain failed: %s", err)
        time.sleep(args.every)


def _retrain_survives() -> tuple[type[Exception], ...]:
    from mlflow.exceptions import MlflowException

    from training.data import MnistError
    from training.feedback import FeedbackError
    from training.registry import RegistryError
    from training.tracking import TrackingError

    return (MnistError, TrackingError, RegistryError, FeedbackError, MlflowException,
            ValueError, OSError)


COMMANDS = {"train": cmd_train, "promote": cmd_promote, "list": cmd_list, "retrain": cmd_retrain,
            "bootstrap": cmd_bootstrap, "feedback": cmd_feedback}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (KeyboardInterrupt, ImportError) as err:
        if not _caused_by_ctrl_c(err):
            raise
        print("interrupted (an MLflow run it had started is marked FAILED)", file=sys.stderr)
        return 130  # the shell's code for a command stopped by Ctrl-C


def _run(args: argparse.Namespace) -> int:
    """Run the command, its errors as one line; Ctrl-C may land in these imports too."""
    from training.config import Settings
    from training.data import MnistError
    from training.feedback import FeedbackError
    from training.real_writers import RealWritersError
    from training.registry import PromotionRefused, RegistryError
    from training.tracking import TrackingError

    try:
        return COMMANDS[args.command](Settings.from_env(), args)
    except PromotionRefused as err:
        print(f"promotion refused: {err}", file=sys.stderr)
        return 1
    except (MnistError, RealWritersError, TrackingError, RegistryError, FeedbackError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _caused_by_ctrl_c(err: BaseException | None) -> bool:
    """Whether a KeyboardInterrupt is behind err: Ctrl-C while a compiled module of TensorFlow's
    loads surfaces as pybind11's ImportError "initialization failed", raised from it."""
    while err is not None:
        if isinstance(err, KeyboardInterrupt):
            return True
        err = err.__cause__ or err.__context__
    return False
