"""`python -m devstack` without starting the stack: port checks, flags, config, `down`."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devstack import __main__ as cli
from devstack import ports, roles, stack
from devstack.config import PID_FILE, StackConfig
from devstack.processes import STACK_MARK, Child, StopSignals, stack_processes
from tests.support.servers import ROOT, free_port


@pytest.fixture
def listening():
    """A socket listening on a free loopback port that never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve(routes: dict[str, tuple[int, bytes]]):
    """An HTTP server on a free port answering `routes` (path -> status, body); 404 else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = routes.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_is_taken(listening):
    assert ports.is_taken(listening)
    assert not ports.is_taken(free_port())


@pytest.mark.parametrize("routes, holder", [
    ({"/health": (200, b"OK")}, "an MLflow server"),
    ({"/v1/models/mnist": (200, json.dumps({"model_version_status": []}).encode())},
     "a TF Serving"),
    ({"/v1/models/mnist": (404, b'{"error": "Servable not found for request: Latest(mnist)"}')},
     "a TF Serving"),
    ({"/readyz": (503, b'{"status": "unavailable"}')}, "a DigitOps web UI"),
    ({}, "an HTTP server"),
])
def test_identify_names_what_holds_a_port(routes, holder):
    server = serve(routes)
    try:
        assert ports.identify(server.server_address[1], "mnist") == holder
    finally:
        server.shutdown()
        server.server_close()


def test_problems_name_the_port_its_use_and_the_variable(listening):
    config = StackConfig(mlflow_port=free_port(), rest_port=free_port(), webui_port=listening)
    (message,) = ports.problems(config)
    assert message.startswith(f"port {listening} (web UI) is taken (another web UI?)")
    assert "WEBUI_PORT=<port> make up (or --webui-port)" in message


def test_problems_refuse_one_port_for_two_roles():
    port = free_port()
    config = StackConfig(mlflow_port=port, rest_port=free_port(), webui_port=port)
    assert ports.problems(config) == [
        f"port {port} is set for both MLflow and web UI; give each its own"]


def test_grpc_port_is_checked_for_either_server():
    assert "TF Serving gRPC" in [use.what for use in StackConfig().ports]
    real = StackConfig(tf_serving="/usr/bin/tensorflow_model_server")
    assert "TF Serving gRPC" in [use.what for use in real.ports]


def test_ports_come_from_compose_variables(monkeypatch):
    monkeypatch.setenv("TF_SERVING_REST_PORT", "9501")
    monkeypatch.setenv("TRAIN_ARGS", "--epochs 1 --train-limit 500")
    args = cli.build_parser().parse_args(["up", "--webui-port", "9080"])
    config = StackConfig.from_args(args, environ={"PATH": ""})
    assert (config.mlflow_port, config.rest_port, config.webui_port) == (5000, 9501, 9080)
    assert config.train_args == ("--epochs", "1", "--train-limit", "500")
    assert config.tf_serving is None


def test_a_bad_port_variable_is_an_error(monkeypatch, capsys):
    monkeypatch.setenv("WEBUI_PORT", "eighty")
    assert cli.main(["up"]) == 2
    assert "WEBUI_PORT must be a port number, got 'eighty'" in capsys.readouterr().err


def test_serving_flags_are_the_containers_with_local_paths():
    """The flags stay those of serving/tfserving.flags, so the two stacks serve alike."""
    container = {line.split("=")[0] for line in
                 (ROOT / "serving" / "tfserving.flags").read_text().split()}
    local = [arg for arg in roles.serving_args(StackConfig()) if arg.startswith("--")]
    assert {arg.split("=")[0] for arg in local} == container | {"--host"}
    assert "--host=127.0.0.1" in local  # python -m serving on loopback, as every role
    for arg in local:  # the checked-in configs it reads (models/models.config is written)
        if "=serving/" in arg:
            assert (ROOT / arg.split("=")[1]).is_file(), arg


def test_down_without_a_stack_says_so(tmp_path, capsys):
    (tmp_path / PID_FILE).parent.mkdir(parents=True)
    (tmp_path / PID_FILE).write_text("999999999\n")  # stale: no such process
    assert stack.down(StackConfig(root=tmp_path)) == 0
    assert "No stack started by `make up` is running here" in capsys.readouterr().out
    assert not (tmp_path / PID_FILE).exists()


def test_down_ends_what_outlived_make_up(tmp_path, capsys):
    """A role left behind (devstack killed, say) is found by the checkout's mark, not a pid."""
    mark = {STACK_MARK: str(tmp_path)}
    orphan = subprocess.Popen(["sleep", "600"], env={**os.environ, **mark},
                              start_new_session=True)
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)  # not the stack's
    try:
        assert stack_processes(tmp_path) == [orphan.pid]
        assert stack.down(StackConfig(root=tmp_path)) == 0
        assert orphan.wait(timeout=15) == -signal.SIGTERM
        assert f"outlived `make up`: pid {orphan.pid}" in capsys.readouterr().out
        assert stranger.poll() is None
    finally:
        for proc in (orphan, stranger):
            proc.kill()
            proc.wait()


def test_a_role_that_keeps_crashing_is_restarted_then_given_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stack, "FIRST_BACKOFF", 0.05)
    role = roles.Role("flaky", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                      probe=lambda: "")
    (tmp_path / "logs").mkdir()
    child = Child(role, tmp_path, Path("logs/flaky.log"))
    child.start()
    try:
        with pytest.raises(stack.RoleFailed) as failed:
            stack._supervise([child], StopSignals())
    finally:
        child.stop(5)
    assert f"exited with status 3 again after {stack.MAX_RESTARTS} restarts; giving up" \
        in str(failed.value)
    assert "boom" in str(failed.value)  # the role's last log lines
    out = capsys.readouterr().out
    delays = re.findall(r"restarting it in ([\d.]+)s \(restart (\d) of 5\)", out)
    assert delays == [(f"{0.05 * 2 ** n:g}", str(n + 1)) for n in range(stack.MAX_RESTARTS)]
    assert (tmp_path / "logs" / "flaky.log").read_text().count("boom") == stack.MAX_RESTARTS + 1


def test_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["up", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("$MLFLOW_PORT, else 5000", "$TF_SERVING_REST_PORT, else 8501",
                    "$TF_SERVING_GRPC_PORT, else 8500", "$WEBUI_PORT, else 8080",
                    "$TRAIN_ARGS, else none"):
        assert default in text

