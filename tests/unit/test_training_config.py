"""The trainer's settings and flags stay in step with what the code reads."""

import dataclasses

import pytest

from training import cli, train
from training.config import ENV_VARS, Settings


def test_every_setting_has_one_environment_variable():
    assert set(ENV_VARS) == {f.name for f in dataclasses.fields(Settings)}


def test_settings_from_env_ignores_empty_values():
    settings = Settings.from_env({"MODELS_DIR": "/srv/models", "MNIST_DIR": ""})
    assert settings.models_dir == "/srv/models" and settings.data_dir is None
    assert settings.base_dir == "/srv/models/mnist"


def test_every_hyperparameter_is_a_flag():
    assert set(cli.HYPERPARAM_FLAGS) == {f.name for f in dataclasses.fields(train.Hyperparams)}


def test_flags_override_the_profile():
    args = cli.build_parser().parse_args(["train", "--profile", "full", "--epochs", "2",
                                          "--no-augment"])
    hp = train.hyperparams(**cli._training_kwargs(args))
    assert hp == dataclasses.replace(train.PROFILES["full"], epochs=2, augment=False)


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--model", "resnet"],
                                  ["promote", "--min-accuracy", "1.5"], ["train", "--width", "-1"]])
def test_bad_flags_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_profile_names_match_the_presets():
    from training.config import DEFAULT_PROFILE, PROFILE_NAMES

    assert set(PROFILE_NAMES) == set(train.PROFILES) and DEFAULT_PROFILE in PROFILE_NAMES
