"""`train --from-champion`: start from the champion's weights and fine-tune for minutes.

    python -m training train --feedback --from-champion

A full run learns MNIST from scratch; to learn a few hundred corrections the champion only
needs a short refresher. The run builds the champion's architecture, copies in the weights of
its published SavedModel (models/mnist/N: what TF Serving serves, so what people corrected)
and trains FINE_TUNE's short schedule on the corrections plus a replay sample of MNIST, which
keeps it from forgetting the digits it already reads. Two more guards against forgetting: the
batch-norm statistics stay the champion's (train.compile_model), and the trained weights end
FINE_TUNE_KEEP of the way from the champion's to where training took them (weight-space
ensembling, as in Wortsman et al., "Robust fine-tuning of zero-shot models", 2022): most of
what the corrections taught, little of what the replay could not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from contract import CHAMPION_ALIAS
from training.config import Settings
from training.profiles import FINE_TUNE, FINE_TUNE_KEEP
from training.registry import RegistryError

ARCHITECTURE = {"model": str, "width": int}  # champion run params the network must match


@dataclass(frozen=True)
class Champion:
    """The version to start from, and its run's architecture."""

    version: int
    saved_model: Path
    architecture: dict

    def overrides(self, given: dict) -> dict:
        """Training flags: FINE_TUNE's schedule, what the user gave, the champion's network."""
        given = {k: v for k, v in given.items() if v is not None}
        for name, value in self.architecture.items():
            if name in given and given[name] != value:
                raise ValueError(f"--from-champion trains the champion's network (version "
                                 f"{self.version}: {name} {value}); drop --{name}.")
        return {**FINE_TUNE, **given, **self.architecture}

    @cached_property
    def weights(self) -> list:
        """The champion's weights as arrays, read from its SavedModel once per run."""
        import tensorflow as tf

        return [v.numpy() for v in _weights(tf.saved_model.load(str(self.saved_model)).variables)]

    def load_into(self, net) -> None:
        """Copy the champion's weights into `net`, variable by variable, shapes checked."""
        mine = _weights(net.variables)
        if [v.shape for v in self.weights] != [tuple(v.shape) for v in mine]:
            raise RegistryError(f"Version {self.version}'s SavedModel does not hold a "
                                f"{net.name} of this shape; train without --from-champion.")
        for target, value in zip(mine, self.weights, strict=True):
            target.assign(value)

    def blend_into(self, net, keep: float = FINE_TUNE_KEEP) -> None:
        """Move `net`'s trained weights back toward the champion's: keep `keep` of the change."""
        import keras

        for target, start in zip(_weights(net.variables), self.weights, strict=True):
            if "float" in str(target.dtype):
                target.assign(start + keep * (keras.ops.convert_to_numpy(target) - start))


def _weights(variables) -> list:
    """Layer weights and batch-norm statistics; not the augmentation layers' random state."""
    return [v for v in variables if "seed_generator" not in v.name]


def champion(client, settings: Settings) -> Champion:
    """The champion to fine-tune, or RegistryError saying why there is none to start from."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(settings.model_name, CHAMPION_ALIAS)
    except MlflowException:
        raise RegistryError("There is no champion to start from: train and promote one first "
                            "(python -m training bootstrap).") from None
    saved_model = Path(settings.base_dir) / str(version.version)
    if not saved_model.is_dir():
        raise RegistryError(f"The champion, version {version.version}, is not published in "
                            f"{settings.base_dir}: there are no weights to start from.")
    params = client.get_run(version.run_id).data.params
    architecture = {k: kind(params[k]) for k, kind in ARCHITECTURE.items() if k in params}
    return Champion(int(version.version), saved_model, architecture)
