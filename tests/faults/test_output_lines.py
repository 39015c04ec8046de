"""What a command prints (issue 13, items 9 and 16): a warning is one ``warning:`` line without
the Python source path, an over-long error is cut unless ``--verbose``, and ``--quiet`` prints
the result (the main output) and nothing else."""

from __future__ import annotations

import warnings

import pytest
import typer
from typer.testing import CliRunner

from ptycho.errors import DataError, field
from ptycho_cli.errors import MESSAGE_CHARS, guard

SIM = ("simulate", "--N", "32", "--size", "64", "--no-preview", "--no-noise")


def cli(*args):
    from ptycho_cli.app import make_app

    return CliRunner().invoke(make_app(env={}), [str(a) for a in args], catch_exceptions=False)


def test_a_warning_during_a_run_is_one_line_without_a_source_path(tmp_path):
    """A stepped grid cut by an explicit ``--n-images`` warns (item 12) through the command line."""
    result = cli(*SIM, "--scan", "grid", "--step", "8", "--n-images", "4", "--quiet", "--out", tmp_path / "d.npz")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "keeps only the first 4" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: "), result.stderr
    assert "UserWarning" not in result.stderr and ".py:" not in result.stderr


def test_a_warning_names_the_commands_flag(capsys):
    with guard(flags={"train.learning_rate": "--learning-rate"}):
        warnings.warn(f"the loss rose; lower\n{field('train.learning_rate')}", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "warning: the loss rose; lower --learning-rate\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_an_overlong_error_is_cut_unless_verbose(verbose, capsys):
    message = "weights do not fit: " + ", ".join(f"dense_{k}/kernel:0 (3, 3, 64)" for k in range(200))
    with pytest.raises(typer.Exit) as exit_info, guard(verbose=verbose):
        raise DataError(message)
    assert exit_info.value.exit_code == 3
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    if verbose:
        assert line == f"error: {message}"
    else:
        assert len(line) <= len("error: ") + MESSAGE_CHARS + len(" (cut; --verbose prints it whole)")
        assert line.startswith("error: weights do not fit: dense_0/kernel:0")
        assert line.endswith("… (cut; --verbose prints it whole)")


def test_quiet_prints_the_result_and_nothing_else(tmp_path):
    out = tmp_path / "d.npz"
    result = cli(*SIM, "--n-images", "4", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"simulated: {out}"] and result.stderr == ""
    loud = cli(*SIM, "--n-images", "4", "--out", tmp_path / "e.npz")
    assert loud.exit_code == 0 and len(loud.stdout.splitlines()) > 1
