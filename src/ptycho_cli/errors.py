"""Exit codes (SPEC §12) and the mapping from exceptions to one-line messages."""

from __future__ import annotations

import contextlib
import enum
import sys
import traceback
from collections.abc import Iterator

import typer

from ptycho.errors import PtychoError


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
def guard(verbose: bool = False) -> Iterator[None]:
    """Run a command body, turning exceptions into one line on stderr and the right exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except PtychoError as exc:
        if verbose:
            traceback.print_exc()
        _error(str(exc))
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
