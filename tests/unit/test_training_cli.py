"""How the trainer's command line ends when Ctrl-C lands while TensorFlow is still loading.

The integration test presses Ctrl-C a few seconds into a real run; where that instant falls
inside one of TensorFlow's compiled modules, pybind11 turns the KeyboardInterrupt into
`ImportError("initialization failed")` raised from it (PYBIND11_CATCH_INIT_EXCEPTIONS). That
instant cannot be hit on demand, so these tests raise the same chain from the command.
"""

import pytest

from training import cli


def _raise(error: BaseException):
    def command(settings, args):
        raise error
    return command


def _import_failed_by_ctrl_c() -> ImportError:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt
    except ImportError as err:
        return err


@pytest.mark.parametrize("error", [KeyboardInterrupt(), _import_failed_by_ctrl_c()],
                         ids=["ctrl-c", "ctrl-c-inside-a-compiled-import"])
def test_ctrl_c_ends_with_one_line_and_exit_130(error, monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "list", _raise(error))
    assert cli.main(["list"]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["interrupted (an MLflow run it had started is marked FAILED)"]


def test_an_import_error_of_its_own_is_not_taken_for_ctrl_c(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "list", _raise(ImportError("No module named 'optree'")))
    with pytest.raises(ImportError, match="optree"):
        cli.main(["list"])
