"""The trainer's settings and flags stay in step with what the code reads."""

import dataclasses

import pytest

from training import cli, profiles
from training.config import ENV_VARS, Settings


def test_every_setting_has_one_environment_variable():
    assert set(ENV_VARS) == {f.name for f in dataclasses.fields(Settings)}


def test_settings_from_env_ignores_empty_values():
    settings = Settings.from_env({"MODELS_DIR": "/srv/models", "MNIST_DIR": ""})
    assert settings.models_dir == "/srv/models" and settings.data_dir is None
    assert settings.base_dir == "/srv/models/mnist"


def test_no_flags_means_the_profile_as_it_is():
    for name, preset in profiles.PROFILES.items():
        args = cli.build_parser().parse_args(["train", "--profile", name])
        assert profiles.hyperparams(**cli._training_kwargs(args)) == preset


def test_flags_override_the_profile():
    args = cli.build_parser().parse_args(["train", "--profile", "full", "--epochs", "2",
                                          "--no-augment"])
    hp = profiles.hyperparams(**cli._training_kwargs(args))
    assert hp == dataclasses.replace(profiles.PROFILES["full"], epochs=2, augment=False)


def test_help_shows_each_profiles_value(capsys):
    assert profiles.describe("augment") == "off quick, on full"
    assert profiles.describe("model") == "vgg"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default: the profile's, {profiles.describe('epochs')})" in help_text


def test_unknown_model_or_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose one of convnet, vgg"):
        profiles.hyperparams(model="resnet")
    with pytest.raises(ValueError, match="unknown profile 'huge'; choose one of quick, full"):
        profiles.hyperparams("huge")


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--model", "resnet"],
                                  ["promote", "--min-accuracy", "1.5"], ["train", "--width", "-1"]])
def test_bad_flags_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_architecture_names_match_the_models_built():
    from training import models

    assert set(profiles.ARCHITECTURE_NAMES) == set(models.ARCHITECTURES)
    assert profiles.DEFAULT_PROFILE in profiles.PROFILES


@pytest.mark.parametrize("value", ["abc", "0", "-3", "5000", "2.5"])
def test_a_drawn_set_size_the_test_split_cannot_supply_is_refused_clearly(value):
    with pytest.raises(ValueError, match="DRAWN_DIGITS_PER_DIGIT must be a whole number from 1"):
        Settings.from_env({"DRAWN_DIGITS_PER_DIGIT": value})
    assert Settings.from_env({"DRAWN_DIGITS_PER_DIGIT": "20"}).drawn_per_digit == 20


def test_real_flag_overrides_the_profile_and_names_the_run():
    for flag, value in [("--real", True), ("--no-real", False)]:
        args = cli.build_parser().parse_args(["train", "--profile", "quick", flag])
        hp = profiles.hyperparams(**cli._training_kwargs(args))
        assert hp.real is value
        shown = "real-on" in profiles.run_name("quick", hp)
        assert shown is (value != profiles.PROFILES["quick"].real)


def test_the_accuracy_floor_is_the_registrys_own(capsys):
    from training import registry

    for command in ["promote", "bootstrap"]:
        parsed = cli.build_parser().parse_args([command])
        assert parsed.min_accuracy == registry.DEFAULT_MIN_ACCURACY
    assert cli.build_parser().parse_args(["promote"]).tolerance == registry.DEFAULT_TOLERANCE
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["promote", "--help"])
    assert f"(default: {registry.DEFAULT_MIN_ACCURACY})" in capsys.readouterr().out
