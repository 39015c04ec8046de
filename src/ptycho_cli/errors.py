"""Exit codes (``docs/cli.md#exit-codes``) and the mapping from exceptions to one-line messages.

The core's messages name config fields (`` `train.learning_rate` ``, see :mod:`ptycho.errors`);
:func:`guard` prints them with the running command's flags instead (:mod:`ptycho_cli.fields`).
"""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping

import typer

from ptycho.errors import PtychoError
from ptycho_cli.fields import render


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    BAD_DATA = 3
    NUMERICAL = 4
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, as shells report it


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``with`` block unwinds (temporary files
    are removed, no partial output is left) exactly as for Ctrl-C."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only; the
    previous handler is restored afterwards)."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


MESSAGE_CHARS = 400
"""Longest error or warning line printed without ``--verbose`` (a library's message may list
every variable of a network)."""


def one_line(message: str, *, verbose: bool = False) -> str:
    """``message`` on one line, cut to :data:`MESSAGE_CHARS` unless ``verbose``."""
    text = " ".join(str(message).split())
    if verbose or len(text) <= MESSAGE_CHARS:
        return text
    return text[: MESSAGE_CHARS - 1] + "… (cut; --verbose prints it whole)"


def _error(message: str, verbose: bool = False) -> None:
    typer.echo(f"error: {one_line(message, verbose=verbose)}", err=True)


@contextlib.contextmanager
def one_line_warnings(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Print warnings as ``warning: MESSAGE`` (one line, no source path, field references as the
    command's flags) while the block runs."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings API
        typer.echo(f"warning: {one_line(render(str(message), flags))}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def guard(verbose: bool = False, flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run a command body, turning exceptions into one line on stderr and the right exit code.

    ``flags`` maps the command's config fields to its flags (``{"train.learning_rate":
    "--learning-rate"}``; the built-ins' are in :data:`ptycho_cli.fields.COMMAND_FLAGS`): the field
    references in a core error are printed as those flags.
    """
    try:
        with one_line_warnings(flags):
            yield
    except typer.Exit:
        raise
    except PtychoError as exc:
        if verbose:
            traceback.print_exc()
        _error(render(str(exc), flags), verbose)
        raise typer.Exit(exc.exit_code) from None
    except Terminated:
        _error("terminated (SIGTERM); partial outputs were removed")
        raise typer.Exit(ExitCode.TERMINATED) from None
    except KeyboardInterrupt:
        _error("interrupted; partial outputs were removed")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if verbose:
            traceback.print_exc()
        else:
            _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)")
            raise typer.Exit(ExitCode.INTERNAL) from None
        raise typer.Exit(ExitCode.INTERNAL) from None


def fail(message: str, code: ExitCode) -> None:
    """Print one error line and exit with ``code``."""
    _error(message)
    sys.stderr.flush()
    raise typer.Exit(int(code))
