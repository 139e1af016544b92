"""Measure what the feedback loop is worth, and what it costs the page.

0. The proving ground (--writers semeion): Semeion's first four blocks (800 digits by people
   the model never saw, ../shared/data/real-writers) are drawn as canvases and sent through
   the real web UI's POST /api/predict and POST /api/feedback as a person correcting the page
   would (null when right, the true digit when wrong), in steps of 100, 200, 400 and 800;
   after each step `python -m training retrain` (fine-tuned from the champion, promoted or
   refused by the gate). Printed: `real_accuracy_semeion` on the last four blocks (through
   the model's predict_image graph, as the page answers) and MNIST test, before and after
   each step, and each retrain's wall time.
1. Worth: MNIST *test* digits redrawn in a style the model does badly on (strokes about three
   times as thick as MNIST's, slanted hard to the right) go through the real web UI;
   500 of them are corrected through POST /api/feedback. `train --feedback` then trains the
   next version. Printed: accuracy on the held-out corrections and on 2,000 fresh styled
   digits, before and after, and on MNIST test digits no correction came from (must not drop).
2. Cost: /api/predict p50/p99 at concurrency 1 with and without a canary answering beside
   the champion (the shadow call should cost <= 1 ms at p50), two stacks asked in turn.
3. Feedback writes per second with SQLite: through the store directly and through the API.

Usage:
    python bench/feedback_loop.py --writers semeion      # 0. (quick profile; ~20 min on 2 cores)
    python bench/feedback_loop.py --out results/feedback_loop.json
    python bench/feedback_loop.py --train-limit 12000 --epochs 2   # a shorter run
    python bench/feedback_loop.py --shadow-only                     # 2. only, untrained

Trains its models under a temporary folder (quick profile; minutes on 2 cores). Not run by CI.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import AS_THE_STACKS, model_server, web_ui  # noqa: E402
from contract import IMAGE_INPUT, IMAGE_SIGNATURE, MODEL_NAME  # noqa: E402  (path set above)
from corrections.store import Answer, FeedbackStore  # noqa: E402
from training import data as mnist_data  # noqa: E402
from training import (  # noqa: E402
    export,
    feedback,
    models,
    models_config,
    registry,
    train,
)
from training.config import Settings  # noqa: E402
from training.profiles import PROFILES  # noqa: E402
from webui import pending  # noqa: E402

DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_REAL_WRITERS = ROOT.parent / "shared" / "data" / "real-writers"
CORRECTED = range(5000, 5500)  # MNIST test digits people "drew" and corrected
FRESH = range(5500, 7500)  # more of the style, never corrected: a larger before/after check
UNTOUCHED = range(0, 5000)  # MNIST test digits no correction came from
SEMEION_STEPS = (100, 200, 400, 800)  # corrections sent through the page before each retrain


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/feedback_loop.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR") or str(DEFAULT_MNIST),
                        help="folder with the four MNIST files (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="training images per model (default: all 60,000)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per model (default: the quick profile's)")
    parser.add_argument("--requests", type=int, default=300,
                        help="timed /api/predict requests per setting (default: %(default)s)")
    parser.add_argument("--shadow-only", action="store_true",
                        help="only time /api/predict with and without a canary, on two "
                             "untrained copies of the quick profile's network (about a minute)")
    parser.add_argument("--writers", choices=("styled", "semeion"), default="styled",
                        help="whose corrections: MNIST test digits in a thick, slanted style "
                             "(1.-3.), or Semeion's first four blocks through the page, with "
                             "a retrain after each step (0.) (default: %(default)s)")
    parser.add_argument("--real-writers-dir",
                        default=os.environ.get("REAL_WRITERS_DIR") or str(DEFAULT_REAL_WRITERS),
                        help="--writers semeion: the real-writer files (default: %(default)s)")
    parser.add_argument("--steps", default=",".join(map(str, SEMEION_STEPS)),
                        help="--writers semeion: corrections sent before each retrain, "
                             "cumulative (default: %(default)s)")
    parser.add_argument("--from-champion", action=argparse.BooleanOptionalAction, default=True,
                        help="--writers semeion: retrain fine-tunes the champion (default: on)")
    parser.add_argument("--tolerance", type=float, default=registry.DEFAULT_TOLERANCE,
                        help="--writers semeion: the promote gate's (default: %(default)s)")
    parser.add_argument("--out", default=None, help="also write the JSON here (default: none)")
    return parser.parse_args(argv)


# ---- the style -------------------------------------------------------------------------------

def styled_png(pixels: np.ndarray, pen: int = 15, slant: float = 0.5) -> bytes:
    """Redraw an MNIST digit with a thick pen and a strong slant, on a 400x400 canvas."""
    big = Image.fromarray(pixels).resize((280, 280), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (400, 400))
    canvas.paste(big, (60, 60))  # room for the slant
    ink = canvas.point(lambda v: 255 if v > 100 else 0).filter(ImageFilter.MaxFilter(pen))
    sheared = ink.transform(ink.size, Image.Transform.AFFINE,
                            (1, slant, -slant * 200, 0, 1, 0), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    Image.eval(sheared, lambda v: 255 - v).save(out, format="PNG")
    return out.getvalue()


# ---- servers ---------------------------------------------------------------------------------

@contextmanager
def stack_for(config: Path, db_url: str):
    """Our model server on `config` and the web UI in front; yield (serving, webui) URLs."""
    with model_server(f"--model_config_file={config}", AS_THE_STACKS) as (serving_url, _), \
            web_ui(serving_url, env={"FEEDBACK_DB_URL": db_url}) as webui_url:
        yield serving_url, webui_url


def predict(url: str, png: bytes, session: requests.Session) -> dict:
    image = base64.b64encode(png).decode()
    response = session.post(f"{url}/api/predict", json={"image": image}, timeout=30)
    response.raise_for_status()
    return response.json()


def served_accuracy(serving_url: str, version: int, pngs: list[bytes], labels) -> float:
    """Accuracy of one served version through `predict_image`, as the page gets it."""
    session, right = requests.Session(), 0
    for start in range(0, len(pngs), 50):
        batch = [{IMAGE_INPUT: {"b64": base64.b64encode(p).decode()}}
                 for p in pngs[start:start + 50]]
        body = session.post(f"{serving_url}/v1/models/{MODEL_NAME}/versions/{version}:predict",
                            json={"signature_name": IMAGE_SIGNATURE, "instances": batch},
                            timeout=120).json()
        right += sum(row["digit"] == int(label) for row, label in
                     zip(body["predictions"], labels[start:start + 50], strict=True))
    return right / len(pngs)


def shadow_cost(settings: Settings, stable: int, canary: int, pngs: list[bytes], total: int,
                db_url: str) -> dict:
    """/api/predict at concurrency 1 with label canary answering beside stable, and without.

    Two stacks side by side, one with each models.config, asked in turn request by request
    (which goes first alternates), so that both see the same machine at the same moments.
    """
    folder = Path(settings.models_config).parent
    configs = {"with_canary": folder / "with-canary.config",
               "without_canary": folder / "without-canary.config"}
    for name, canary_version in (("with_canary", canary), ("without_canary", None)):
        models_config.write(models_config.build(stable, canary_version, name=MODEL_NAME,
                                                base_path=settings.serving_base_path),
                            configs[name])
    with ExitStack() as stack:
        uis = {name: stack.enter_context(stack_for(path, db_url))[1]
               for name, path in configs.items()}
        sessions = {name: requests.Session() for name in uis}
        for png in pngs[:20]:  # warm-up: label caches, connections, the graphs
            for name, ui in uis.items():
                predict(ui, png, sessions[name])
        seconds: dict[str, list[float]] = {name: [] for name in uis}
        in_time = 0
        for i in range(total):
            order = list(uis) if i % 2 else list(reversed(uis))
            for name in order:
                started = time.perf_counter()
                body = predict(uis[name], pngs[i % len(pngs)], sessions[name])
                seconds[name].append(time.perf_counter() - started)
                if name == "with_canary":
                    in_time += (body.get("challenger") or {}).get("digit") is not None
    result = {}
    for name, times in seconds.items():
        cuts = statistics.quantiles(times, n=100)
        result[name] = {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2),
                        "requests": total}
    result["challenger_answered_in_time"] = in_time
    result["shadow_cost_p50_ms"] = round(result["with_canary"]["p50_ms"]
                                         - result["without_canary"]["p50_ms"], 2)
    return result


# ---- the proving ground ----------------------------------------------------------------------

def correct_through_page(ui: str, pngs: list[bytes], labels, session: requests.Session) -> int:
    """Draw each PNG on the page and judge its answer as a person would: null when it was
    right, the true digit when wrong. Returns how many answers were right."""
    right = 0
    for png, label in zip(pngs, labels, strict=True):
        body = predict(ui, png, session)
        said_right = body["digit"] == int(label)
        right += said_right
        session.post(f"{ui}/api/feedback", timeout=30, json={
            "prediction_id": body["prediction_id"],
            "digit": None if said_right else int(label)}).raise_for_status()
    return right


def wait_for_stable(serving_url: str, version: int, timeout: float = 60) -> None:
    """Until label stable answers with `version` (the server re-reads models.config)."""
    from contract import STABLE_LABEL, serving_version

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{serving_url}/v1/models/{MODEL_NAME}/labels/{STABLE_LABEL}",
                              timeout=5)
        if status.ok and serving_version(status.json()["model_version_status"]) == str(version):
            return
        time.sleep(0.5)
    raise TimeoutError(f"label stable did not reach version {version} in {timeout:.0f} s")


def proving_ground(args, settings: Settings, sizes: dict) -> dict:
    """Semeion's users correct the page step by step; a retrain after each step."""
    from contract import CHAMPION_ALIAS
    from training import real_writers, retrain, tracking

    writers = real_writers.load(args.real_writers_dir)
    user_pngs = real_writers.canvas_pngs(writers.semeion_users.x, seed=0)
    user_labels = writers.semeion_users.y
    steps = [int(n) for n in args.steps.split(",")]

    print(f"training the champion ({sizes or 'quick profile'})...", flush=True)
    first = train.run(settings, profile="quick", verbose=0, **sizes)
    registry.promote(settings, first.version, min_accuracy=0.0)
    client = tracking.connect(settings)

    def row(version: int, **extra) -> dict:
        """The version's figures as its training run measured them (Semeion rows 800 on)."""
        info = registry.versions_by_number(client, settings)[version]
        return {"version": version, "test_accuracy": round(info.test_accuracy, 4),
                "real_accuracy_semeion": round(info.real_accuracy_semeion, 4),
                "real_accuracy_usps": round(info.real_accuracy_usps, 4),
                "canvas_accuracy": round(info.canvas_accuracy, 4), **extra}

    curve = [row(first.version, corrections=0, decision="first champion")]
    print(curve[-1], flush=True)
    # As every stack runs it (serving/tfserving.flags): promote labels a version before it
    # has loaded, and a strict server would refuse that config and keep serving the old one.
    flags = (f"--model_config_file={settings.models_config}",
             "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
             "--allow_version_labels_for_unavailable_models=true", AS_THE_STACKS)
    with model_server(*flags) as (serving, _), \
            web_ui(serving, env={"FEEDBACK_DB_URL": settings.feedback_db_url}) as ui:
        session, sent = requests.Session(), 0
        for step in steps:
            right = correct_through_page(ui, user_pngs[sent:step], user_labels[sent:step],
                                         session)
            page = round(right / (step - sent), 4)
            sent = step
            started = time.perf_counter()
            decision = retrain.run(settings, min_corrections=1, tolerance=args.tolerance,
                                   min_accuracy=0.0, profile="quick",
                                   from_champion=args.from_champion, **sizes)
            seconds = round(time.perf_counter() - started, 1)
            champion = registry.alias_version(client, settings, CHAMPION_ALIAS)
            wait_for_stable(serving, champion)
            curve.append(row(decision.version or champion, corrections=step,
                             page_accuracy_during_step=page, decision=decision.action,
                             reason=decision.reason, retrain_seconds=seconds,
                             champion_after=champion))
            print(curve[-1], flush=True)
    return {"writers": "semeion: rows 0-799 correct the page, rows 800 on measure it",
            "from_champion": args.from_champion, "curve": curve}


# ---- the run ---------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    mnist = mnist_data.load(args.mnist_dir)
    root = Path(tempfile.mkdtemp(prefix="digitops-feedback-bench-"))
    db_url = f"sqlite:///{root}/feedback.db"
    settings = Settings(tracking_uri=f"sqlite:///{root}/mlflow.db",
                        artifact_root=str(root / "artifacts"), models_dir=str(root / "models"),
                        models_config=str(root / "models.config"),
                        serving_base_path=str(root / "models" / MODEL_NAME),
                        data_dir=args.mnist_dir, feedback_db_url=db_url)
    sizes = {"train_limit": args.train_limit, "epochs": args.epochs}
    result: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                    "style": "MNIST test digits at 280 px, strokes thickened by a 15 px pen "
                             "(about 3x MNIST's after the 20x20 fit), sheared 0.5 to the right",
                    "training": {"profile": "quick", **sizes}}
    try:
        if args.writers == "semeion":
            result["proving_ground"] = proving_ground(args, settings, sizes)
            return report(result, args.out)
        if args.shadow_only:
            fresh = [styled_png(mnist.x_test[i]) for i in FRESH[:100]]
            for version in (1, 2):
                export.export_saved_model(
                    models.build(PROFILES["quick"].model),
                    Path(settings.serving_base_path) / str(version))
            result = {"machine": result["machine"], "models": "quick profile's network, "
                      "untrained, as versions 1 (stable) and 2 (canary)",
                      "predict_latency_concurrency_1": shadow_cost(settings, 1, 2, fresh,
                                                                   args.requests, db_url)}
            return report(result, args.out)
        print("training the champion (quick profile)...", flush=True)
        first = train.run(settings, profile="quick", verbose=0, **sizes)
        registry.promote(settings, first.version, min_accuracy=0.0)

        corrected = [styled_png(mnist.x_test[i]) for i in CORRECTED]
        fresh = [styled_png(mnist.x_test[i]) for i in FRESH]
        labels = mnist.y_test

        print("drawing and correcting 500 styled digits through the web UI...", flush=True)
        with stack_for(Path(settings.models_config), db_url) as (_, ui):
            session, writes, right = requests.Session(), [], 0
            sure = {True: [], False: []}  # confident or not -> was it right
            for png, label in zip(corrected, labels[CORRECTED.start:CORRECTED.stop],
                                  strict=True):
                body = predict(ui, png, session)
                said_right = bool(body["digit"] == label)
                right += said_right
                sure[body["confident"]].append(said_right)
                started = time.perf_counter()
                response = session.post(f"{ui}/api/feedback", timeout=30, json={
                    "prediction_id": body["prediction_id"],
                    "digit": None if said_right else int(label)})
                writes.append(time.perf_counter() - started)
                response.raise_for_status()
        result["feedback_api"] = {"corrections": len(writes),
                                  "writes_per_second": round(len(writes) / sum(writes), 1),
                                  "p50_ms": round(statistics.median(writes) * 1000, 2)}
        result["champion_on_the_style_through_the_page"] = {
            "accuracy": round(right / len(corrected), 4),
            **{("confident" if flag else "a_guess"): {
                "answers": len(said), "accuracy": round(sum(said) / len(said), 4) if said else None}
               for flag, said in sure.items()}}

        print("training with --feedback...", flush=True)
        second = train.run(settings, profile="quick", verbose=0, use_feedback=True, **sizes)
        data = feedback.load(FeedbackStore(db_url))
        before = feedback.evaluate(feedback.saved_model_predict(settings, first.version), data)
        after = feedback.evaluate(feedback.saved_model_predict(settings, second.version), data)
        registry.promote(settings, second.version, min_accuracy=0.0, canary=True)

        untouched = mnist.x_test[UNTOUCHED.start:UNTOUCHED.stop].astype("float32")
        untouched_labels = labels[UNTOUCHED.start:UNTOUCHED.stop]

        def mnist_accuracy(version: int) -> float:
            probabilities = feedback.saved_model_predict(settings, version)(untouched)
            return round(float((probabilities.argmax(1) == untouched_labels).mean()), 4)

        with stack_for(Path(settings.models_config), db_url) as (serving, _):
            fresh_labels = labels[FRESH.start:FRESH.stop]
            result["worth"] = {
                "held_out_corrections": len(data.holdout),
                "trained_on_corrections": len(data.train),
                "held_out_accuracy": {"before": round(before["feedback_accuracy"], 4),
                                      "after": round(after["feedback_accuracy"], 4)},
                "fresh_styled_2000": {
                    "before": round(served_accuracy(serving, first.version, fresh,
                                                    fresh_labels), 4),
                    "after": round(served_accuracy(serving, second.version, fresh,
                                                   fresh_labels), 4)},
                "mnist_test_untouched_5000": {"before": mnist_accuracy(first.version),
                                              "after": mnist_accuracy(second.version)},
            }
        print("timing /api/predict with and without the canary...", flush=True)
        result["predict_latency_concurrency_1"] = shadow_cost(
            settings, first.version, second.version, fresh, args.requests, db_url)

        result["store_writes_per_second_sqlite"] = store_writes(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report(result, args.out)


def report(result: dict, out: str | None) -> int:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    return 0


def store_writes(root: Path, total: int = 500) -> float:
    """Committed corrections per second, one writer, straight into the SQLite store."""
    store = FeedbackStore(f"sqlite:///{root}/writes.db")
    store.migrate()
    png = styled_png(np.zeros((28, 28), np.uint8))
    started = time.perf_counter()
    for i in range(total):
        store.save(Answer(pending.new_id(), datetime.now(UTC), MODEL_NAME, "1", "stable", i % 10,
                          tuple([0.1] * 10), png, bytes(784)), (i + 1) % 10)
    return round(total / (time.perf_counter() - started), 1)


if __name__ == "__main__":
    sys.exit(main())
