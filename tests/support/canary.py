"""Two served versions of one trained model: 1 labelled stable, 2 labelled canary."""

from __future__ import annotations

import shutil
from pathlib import Path

from training import models_config


def publish_twice(version_dir: Path, root: Path) -> Path:
    """Copy a SavedModel in as versions 1 and 2 under root/mnist; return its models.config."""
    for version in ("1", "2"):
        shutil.copytree(version_dir, root / "mnist" / version)
    config = models_config.build(1, 2, base_path=str(root / "mnist"))
    return models_config.write(config, root / "models.config")
