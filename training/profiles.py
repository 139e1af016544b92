"""Training presets: every hyperparameter, and the two profiles that set them all.

Kept free of TensorFlow so the command line can show the defaults in --help at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

# The architectures training.models builds (its ARCHITECTURES dict has these keys).
ARCHITECTURE_NAMES = ("convnet", "vgg")


@dataclass(frozen=True)
class Hyperparams:
    model: str
    epochs: int
    batch_size: int
    learning_rate: float  # peak of the warm-up + cosine schedule
    width: int = 32  # filters in the first conv layer; later layers scale with it
    augment: bool = False  # random shifts, turns and zooms while training
    redraw: float = 0.0  # share of each batch redrawn as pen drawings (training.augment)
    refine: bool = False  # redraw along pruned, smoothed skeletons whose strokes run on
    real: bool = False  # add USPS train, drawn on the canvas, to the training images
    conventions: bool = False  # redraw some 1s, 7s and 9s as other countries write them
    train_limit: int | None = None  # None: all 60,000 training images
    seed: int = 0


HYPERPARAM_NAMES = tuple(f.name for f in fields(Hyperparams))

# Picked by bench/train_profiles.py on a 2-core CPU (seed 0), MNIST test / drawn digits:
# quick 99.42% / 97.57% in 3.0 minutes (compose and make up train their first champion with it);
# full, the default, 99.58% / 97.90% in 11.0 (40 s epochs). Against the same profiles with
# --redraw 0, redrawing half of each batch as pen drawings bought 1.0 and 0.3 points on drawn
# digits for -0.09 and +0.01 on MNIST. With an earlier draw of the pen-drawn digits, refined
# redraws (--refine) bought quick 0.20 and 0.34 points on drawn digits (seeds 0 and 1, from
# 97.40% and 97.23%) and 0.12 and 0.02 on MNIST, but cost full 0.47 and 0.17 (from 98.17% and
# 97.97%), so full keeps the plain skeleton. Batch 64 in full also keeps a one-epoch run on
# 5,000 images above 90%, where batch 128 fell to 88%.
# --real (USPS train drawn on the canvas, 7,291 more images) is off in both. On quick (seeds 0
# and 1) it bought USPS test 0.55 and 1.20 points (mean 96.94% -> 97.81%) but cost Semeion,
# the writers never trained on, 1.89 and 1.39 (mean 90.23% -> 88.59%), and MNIST and drawn a
# few hundredths to tenths: its gain is on writers of USPS train's own source, its loss on the
# page's new users. Full was not measured with it (bench/train_profiles.py, 2026-12-07).
# A heavy-tailed width stretch in the redraws (a Student t of 2 degrees of freedom on the log
# width, cut at 2x, where a normal spread is) was tried and taken out. Quick moved Semeion
# +1.26 (seed 0) and -0.25 (seed 1); full, seed 0, read 99.46 / 97.80 / 97.56 / 89.03% with
# it (seed 1: 99.54 / 97.87 / 97.66 / 89.41%) and 99.54 / 97.80 / 97.76 / 90.92% without:
# -1.9 on Semeion and -0.2 on USPS for the default profile.
# --conventions (a 1's flag, a crossed 7, a 9's curled tail on 30% of their redraws, with the
# heavy tail) read quick 99.34 / 97.43 / 97.26 / 91.05% and 99.33 / 97.17 / 97.56 / 90.92%
# (seeds 0 and 1) against 99.35 / 97.53 / 97.16 / 91.80% and 99.41 / 97.60 / 97.06 / 89.66%
# without: +0.3 on both real sets taken together, but seed 0 lost 0.75 on Semeion and the
# drawn digits lost 0.27, inside what a seed moves; off until more seeds say so.
PROFILES = {
    "quick": Hyperparams(model="vgg", epochs=4, batch_size=128, learning_rate=3e-3, redraw=0.5,
                         refine=True, real=False),
    "full": Hyperparams(model="vgg", epochs=16, batch_size=64, learning_rate=3e-3,
                        augment=True, redraw=0.5, real=False),
}
DEFAULT_PROFILE = "full"

# Each page correction trains this many times per epoch (`train --feedback --feedback-weight`).
# Measured with the quick profile on other writers' pen drawings: 1,568 corrections among
# 60,000 MNIST digits lifted the page's accuracy 95.6 -> 96.6% trained once each, to 98.1%
# repeated 8 times (MNIST test 99.42 -> 99.31%).
DEFAULT_FEEDBACK_WEIGHT = 8
# `--from-champion`'s schedule unless flags say otherwise (training.finetune): 10,000 MNIST
# digits replayed (9,000 trained on, the rest validate), 4 epochs, a third of the profiles'
# peak learning rate, each correction 32 times; the batch-norm statistics stay the
# champion's, and the trained weights end FINE_TUNE_KEEP of the way back to the champion's.
# Measured by bench/finetune_schedules.py from a quick champion, with Semeion's first four
# blocks as 642 training corrections: trained freely, 2 epochs x8 moved Semeion +5.0 points
# but the drawn digits -0.5 and USPS -0.4, and 4 epochs x32 +6.1 for -1.0 and -1.2 (frozen
# statistics alone: +5.9, -1.1, -1.0): more than promote's 0.1-point tolerance, so retrain
# refused every challenger. Frozen and halfway back: +3.8 for -0.03 drawn, +0.05 USPS, +0.03
# MNIST; kept 0.75: +5.2 for -0.6 and -0.5. Each promoted retrain starts from the last.
FINE_TUNE = {"epochs": 4, "train_limit": 10000, "learning_rate": 1e-3}
FINE_TUNE_FEEDBACK_WEIGHT = 32
FINE_TUNE_KEEP = 0.5  # share of the fine-tune's change kept; the rest is the champion's


def hyperparams(profile: str = DEFAULT_PROFILE, **overrides) -> Hyperparams:
    """A profile's hyperparameters with the given (non-None) overrides."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    hp = replace(PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None})
    if hp.model not in ARCHITECTURE_NAMES:
        raise ValueError(f"unknown model {hp.model!r}; choose one of "
                         f"{', '.join(ARCHITECTURE_NAMES)}")
    return hp


# How a run's name shows a hyperparameter that differs from its profile (model and seed
# always show): quick-vgg-s0, full-vgg-e1-n5000-s0.
_NAME_PARTS = {"epochs": "e", "batch_size": "b", "learning_rate": "lr", "width": "w",
               "augment": "aug-", "redraw": "rd", "refine": "refine-", "real": "real-",
               "conventions": "conv-", "train_limit": "n"}


def run_name(profile: str, hp: Hyperparams) -> str:
    """A stable, readable run name: profile, architecture, what differs, seed."""
    preset = PROFILES[profile]
    changed = [f"{prefix}{_shown(getattr(hp, field))}" for field, prefix in _NAME_PARTS.items()
               if getattr(hp, field) != getattr(preset, field)]
    return "-".join([profile, hp.model, *changed, f"s{hp.seed}"])


def describe(name: str) -> str:
    """One hyperparameter's value in each profile, for --help: '4 quick, 16 full' or 'vgg'."""
    values = {profile: _shown(getattr(hp, name)) for profile, hp in PROFILES.items()}
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{value} {profile}" for profile, value in values.items())


def _shown(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)
