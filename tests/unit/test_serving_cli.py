"""`python -m serving`'s command line: the official flag names, and the ones it ignores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serving.config import parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_the_test_helpers_command_line():
    settings = parse_args(["--rest_api_port=9000", "--model_config_file=m.config",
                           "--file_system_poll_wait_seconds=1"])
    assert settings.rest_api_port == 9000
    assert settings.model_config_file == "m.config"
    assert settings.model_config_file_poll_wait_seconds == 0
    assert settings.ignored == ()


def test_official_flags_are_accepted_and_named_as_ignored():
    settings = parse_args(["--port=8500", "--enable_batching", "--model_name=mnist",
                           "--model_base_path=/models/mnist", "--rest_api_timeout_in_ms", "100",
                           "--batching_parameters_file=b.config", "--grpc_max_threads=4"])
    assert settings.ignored == ("grpc_max_threads", "rest_api_timeout_in_ms")
    assert (settings.port, settings.enable_batching) == (8500, True)
    assert settings.batching_parameters_file == "b.config"
    assert (settings.model_name, settings.model_base_path) == ("mnist", "/models/mnist")


def test_host_defaults_to_every_interface_as_tf_serving():
    assert parse_args(["--model_base_path=/m"]).host == "0.0.0.0"
    settings = parse_args(["--model_base_path=/m", "--host=127.0.0.1", "--port=0"])
    assert (settings.host, settings.port) == ("127.0.0.1", 0)


@pytest.mark.parametrize("given,expected", [
    ([], False), (["--allow_version_labels_for_unavailable_models"], True),
    (["--allow_version_labels_for_unavailable_models=true"], True),
    (["--allow_version_labels_for_unavailable_models=false"], False),
])
def test_booleans_read_like_gflags(given, expected):
    settings = parse_args(["--model_base_path=/m", *given])
    assert settings.allow_version_labels_for_unavailable_models is expected


@pytest.mark.parametrize("argv", [[], ["--model_base_path=/m", "--no_such_flag=1"],
                                  ["--model_base=/m"]])
def test_bad_command_lines_are_refused(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_container_flags_file_runs_our_server():
    flags = (ROOT / "serving" / "tfserving.flags").read_text().split()
    settings = parse_args(flags)
    assert settings.model_config_file == "/models/models.config"
    assert settings.enable_batching
    assert settings.ignored == ()


def test_help_says_it_stands_in_for_tf_serving():
    out = subprocess.run([sys.executable, "-m", "serving", "--help"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert "stands in for tensorflow/serving" in out
    assert "--model_config_file_poll_wait_seconds" in out
    assert "(default: 1)" in out
