"""Exit codes (``docs/cli.md#exit-codes``) and the mapping from exceptions to one-line messages.

The core's messages name config fields (`` `train.learning_rate` ``, see :mod:`ptycho.errors`);
:func:`guard` prints them with the running command's flags instead (:mod:`ptycho_cli.fields`).
"""

from __future__ import annotations

import contextlib
import enum
import sys
import traceback
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


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@contextlib.contextmanager
def guard(verbose: bool = False, flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run a command body, turning exceptions into one line on stderr and the right exit code.

    ``flags`` maps the command's config fields to its flags (``{"train.learning_rate":
    "--learning-rate"}``; the built-ins' are in :data:`ptycho_cli.fields.COMMAND_FLAGS`): the field
    references in a core error are printed as those flags.
    """
    try:
        yield
    except typer.Exit:
        raise
    except PtychoError as exc:
        if verbose:
            traceback.print_exc()
        _error(render(str(exc), flags))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _error("interrupted")
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
