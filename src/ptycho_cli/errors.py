"""Exit codes (``docs/cli.md#exit-codes``) and the mapping from exceptions to one-line messages.

The core's messages name config fields (`` `train.learning_rate` ``, see :mod:`ptycho.errors`);
:func:`guard` prints them with the running command's flags instead (:mod:`ptycho_cli.fields`).
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import threading
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


RESEND_S = 0.05
"""Delay before a SIGTERM that arrived inside the import machinery is delivered again."""


class TerminateHandler:
    """The SIGTERM handler: raise :class:`Terminated` where Python code is running.

    Not inside the import machinery: there the code may be an import that a C extension started
    (TensorFlow imports lazily from inside its C++ calls), and an exception raised into it comes
    back as a ``SystemError`` or worse. The handler then sends the signal again after
    :data:`RESEND_S`, until it lands elsewhere. ``fired`` tells :func:`guard` that any error after
    it is the termination's, however a library mangled it.
    """

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum: int, frame: object) -> None:
        self.fired = True
        code = getattr(frame, "f_code", None)
        if code is not None and code.co_filename.startswith("<frozen importlib"):
            resend = threading.Timer(RESEND_S, os.kill, (os.getpid(), signal.SIGTERM))
            resend.daemon = True
            resend.start()
            return
        raise Terminated()


def sigterm_received() -> bool:
    """Whether a :class:`TerminateHandler` in place has had a SIGTERM."""
    handler = signal.getsignal(signal.SIGTERM)
    return isinstance(handler, TerminateHandler) and handler.fired


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only; the
    previous handler is restored afterwards; :class:`TerminateHandler`)."""
    try:
        previous = signal.signal(signal.SIGTERM, TerminateHandler())
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
        _exit_terminated()
    except KeyboardInterrupt:
        _error("interrupted; partial outputs were removed")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if sigterm_received():  # a library turned the termination into an error of its own
            _exit_terminated()
        if verbose:
            traceback.print_exc()
        else:
            _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)")
            raise typer.Exit(ExitCode.INTERNAL) from None
        raise typer.Exit(ExitCode.INTERNAL) from None


def _exit_terminated() -> None:
    _error("terminated (SIGTERM); partial outputs were removed")
    raise typer.Exit(ExitCode.TERMINATED) from None


def fail(message: str, code: ExitCode) -> None:
    """Print one error line and exit with ``code``."""
    _error(message)
    sys.stderr.flush()
    raise typer.Exit(int(code))
