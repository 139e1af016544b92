"""MLflow's model registry, the published version folders, and TF Serving's labels.

One number names one model everywhere: registered version N is `models/mnist/N` on disk and
TF Serving version N. The `champion` alias is the label `stable`; `challenger` is `canary`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from contract import (
    CANVAS_ACCURACY_TAG,
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    REAL_SEMEION_TAG,
    REAL_USPS_TAG,
    RUN_ID_TAG,
    TEST_ACCURACY_TAG,
)
from training.config import Settings

SAVED_MODEL_ARTIFACT = "saved_model"
# What the gate compares with the champion: the version tag, and how the refusal names it.
# Versions registered before a tag existed lack it: that comparison is skipped for them.
GATED = {TEST_ACCURACY_TAG: "MNIST test", CANVAS_ACCURACY_TAG: "the drawn digits",
         REAL_USPS_TAG: "USPS test (real writers)",
         REAL_SEMEION_TAG: "Semeion (real writers never trained on)"}
DEFAULT_TOLERANCE = 0.001  # 0.1 point: closer than that is noise between two runs
DEFAULT_MIN_ACCURACY = 0.98  # MNIST test accuracy below which no version is promoted


class RegistryError(RuntimeError):
    """The registry and the published folders disagree, or a version cannot be used."""


class PromotionRefused(RegistryError):
    """The quality gate said no."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str
    test_accuracy: float | None
    canvas_accuracy: float | None
    aliases: tuple[str, ...]
    published: bool
    real_accuracy_usps: float | None = None
    real_accuracy_semeion: float | None = None


def _versions(client, settings: Settings) -> list:
    return client.search_model_versions(f"name='{settings.model_name}'")


def check_publishable(client, settings: Settings) -> None:
    """Refuse to train when the next version's folder already exists: wrong models dir or store."""
    latest = max((int(v.version) for v in _versions(client, settings)), default=0)
    target = Path(settings.base_dir) / str(latest + 1)
    if target.exists():
        raise RegistryError(
            f"{target} exists, but the registry at {settings.tracking_uri} has only {latest} "
            "version(s) of this model: the models folder belongs to another MLflow store. "
            "Point MLFLOW_TRACKING_URI at that store, or move the models folder away."
        )


def register(client, settings: Settings, run_id: str, artifact_uri: str,
             metrics: dict[str, float], description: str | None = None) -> int:
    """Create the next version of the registered model from the run's SavedModel artifact.

    The gated metrics become version tags, so promote and the web UI read them in one call.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(settings.model_name)
    except MlflowException:
        client.create_registered_model(
            settings.model_name, description="MNIST digit classifier served by TF Serving.")
    version = client.create_model_version(
        settings.model_name, source=f"{artifact_uri}/{SAVED_MODEL_ARTIFACT}", run_id=run_id,
        description=description, tags={RUN_ID_TAG: run_id,
              **{tag: f"{metrics[tag]:.6f}" for tag in GATED if tag in metrics}},
    )
    return int(version.version)


def publish(export_dir: Path, settings: Settings, version: int) -> Path:
    """Copy a SavedModel to <base>/N atomically: TF Serving ignores the non-numeric .tmp-N."""
    base = Path(settings.base_dir)
    base.mkdir(parents=True, exist_ok=True)
    target, staging = base / str(version), base / f".tmp-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(export_dir, staging)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def versions(client, settings: Settings) -> list[VersionInfo]:
    """Every registered version, newest first, with its accuracy, aliases and publication."""
    rows = []
    for v in _versions(client, settings):
        full = client.get_model_version(settings.model_name, v.version)
        tagged = {tag: float(full.tags[tag]) for tag in GATED if tag in full.tags}
        rows.append(VersionInfo(
            version=int(full.version), run_id=full.run_id,
            test_accuracy=tagged.get(TEST_ACCURACY_TAG),
            canvas_accuracy=tagged.get(CANVAS_ACCURACY_TAG),
            real_accuracy_usps=tagged.get(REAL_USPS_TAG),
            real_accuracy_semeion=tagged.get(REAL_SEMEION_TAG),
            aliases=tuple(sorted(full.aliases)),
            published=(Path(settings.base_dir) / str(full.version)).is_dir(),
        ))
    return sorted(rows, key=lambda row: -row.version)


def alias_version(client, settings: Settings, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException:
        return None


def worse_than(candidate: VersionInfo, champion: VersionInfo,
               tolerance: float = DEFAULT_TOLERANCE) -> list[str]:
    """Each gated metric on which candidate trails champion by more than tolerance, in words."""
    found = []
    for tag, what in GATED.items():
        mine, theirs = getattr(candidate, tag), getattr(champion, tag)
        if mine is not None and theirs is not None and mine < theirs - tolerance:
            found.append(f"on {what} {mine:.2%} against {theirs:.2%} "
                         f"({100 * (theirs - mine):.2f} points worse)")
    return found


def promote(settings: Settings, version: int | None = None,
            min_accuracy: float = DEFAULT_MIN_ACCURACY, canary: bool = False,
            force: bool = False, client=None, tolerance: float = DEFAULT_TOLERANCE) -> VersionInfo:
    """Gate a version, then set `champion` (or `challenger`) and rewrite models.config.

    The gate refuses a version that is not published, below min_accuracy, or (for champion)
    worse than the current champion by more than `tolerance` on any of GATED (MNIST test, the
    drawn digits, the two real-writer sets). `force` skips both accuracy checks: it is the
    rollback to any registered, published version the user names.
    """
    from training import tracking

    client = client or tracking.connect(settings)
    rows = versions_by_number(client, settings)
    if not rows:
        raise PromotionRefused("The registry has no versions yet: train one first.")
    version = version or max(rows)
    if version not in rows:
        raise PromotionRefused(f"Version {version} is not registered; known: "
                               f"{', '.join(map(str, sorted(rows)))}.")
    candidate = rows[version]
    accuracy = candidate.test_accuracy or 0.0
    if not candidate.published:
        raise PromotionRefused(f"Version {version} is not published in {settings.base_dir}: "
                               "TF Serving could not load it.")
    check_loadable(settings, version)
    if not force and accuracy < min_accuracy:
        raise PromotionRefused(f"Version {version} has test accuracy {accuracy:.4f}, below the "
                               f"minimum {min_accuracy:.4f}.")
    champion = next((v for v, row in rows.items() if CHAMPION_ALIAS in row.aliases), None)
    if not canary and not force and champion is not None and champion != version:
        worse = worse_than(candidate, rows[champion], tolerance)
        if worse:
            raise PromotionRefused(
                f"Version {version} is worse than the champion, version {champion}, "
                f"{' and '.join(worse)}; the tolerance is {100 * tolerance:.2f} points. "
                "Use --force to roll back on purpose.")
        from training import feedback

        worse_on_corrections = feedback.gate(settings, version, champion, tolerance)
        if worse_on_corrections:
            raise PromotionRefused(f"{worse_on_corrections} Use --force to promote it anyway.")
    alias = CHALLENGER_ALIAS if canary else CHAMPION_ALIAS
    client.set_registered_model_alias(settings.model_name, alias, version)
    if not canary and CHALLENGER_ALIAS in candidate.aliases:
        client.delete_registered_model_alias(settings.model_name, CHALLENGER_ALIAS)
    sync_serving_config(client, settings)
    return versions_by_number(client, settings)[version]


def check_loadable(settings: Settings, version: int) -> None:
    """Refuse a published folder TF Serving could not load (empty, half copied, not a
    SavedModel): serving would keep the old version and the label would name nothing."""
    import tensorflow as tf

    path = Path(settings.base_dir) / str(version)
    try:
        tf.saved_model.load(str(path), tags=["serve"])
    except Exception as err:  # TensorFlow raises OSError, ValueError, OpError... for a bad one
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise PromotionRefused(f"Version {version} in {path} is not a SavedModel TF Serving "
                               f"can load: {reason}") from None


def versions_by_number(client, settings: Settings) -> dict[int, VersionInfo]:
    return {row.version: row for row in versions(client, settings)}


def sync_serving_config(client, settings: Settings) -> Path | None:
    """Write models.config from the aliases: stable = champion, canary = challenger."""
    from training import models_config  # its protos load slowly: the CLI imports this module

    champion = alias_version(client, settings, CHAMPION_ALIAS)
    if champion is None:
        return None
    challenger = alias_version(client, settings, CHALLENGER_ALIAS)
    config = models_config.build(champion, challenger, name=settings.model_name,
                                 base_path=settings.serving_base_path)
    return models_config.write(config, settings.models_config)
