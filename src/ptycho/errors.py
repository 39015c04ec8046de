"""Exceptions of the core, each carrying the exit code the command line maps it to.

**Messages name config fields, never command-line flags.** The core is a library: a message says
what went wrong, where, and how to fix it in terms of the configuration, with each field written
as its full dotted path from the command's section between backticks, e.g.::

    raise NumericalError(f"training diverged; lower {field('train.learning_rate')}")
    # → "training diverged; lower `train.learning_rate`"

:func:`field` writes that form, :data:`FIELD_REFERENCE` finds it. A library caller reads the field
it would set in its config object; the command line (``ptycho_cli.errors.guard``) replaces each
reference by the flag of the running command that sets it (``learning-rate`` with the two dashes
of a long option) before printing, and by the bare dotted path where that command has no such flag
(a config file or a dotted override sets it). A location at the start of a message (``stitch.crop: 99 is larger …``, as Pydantic reports
fields) is plain text and stays as it is. Keyword arguments of a workflow that are not config
fields (``train(resume=True)``) are named the same way: ``train.resume``.

Exit codes: ``docs/cli.md#exit-codes``.
"""

from __future__ import annotations

import re

FIELD_REFERENCE = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)`")
"""A config field named in a message: a dotted path between backticks (group 1 is the path)."""


def field(path: str) -> str:
    """``path`` (``"train.learning_rate"``) as a message names it: ``"`train.learning_rate`"``."""
    if not FIELD_REFERENCE.fullmatch(f"`{path}`"):
        raise ValueError(f"not a dotted config field path: {path!r}")
    return f"`{path}`"


class PtychoError(Exception):
    """Base class of every error the toolkit raises on purpose.

    The message is one line saying what went wrong, where, and how to fix it.
    """

    exit_code: int = 1


class ConfigError(PtychoError):
    """A configuration or usage error (exit code 2)."""

    exit_code = 2


class DataError(PtychoError):
    """Bad input data: missing keys, wrong shapes, NaN, corrupt files (exit code 3)."""

    exit_code = 3


class NumericalError(PtychoError):
    """A numerical failure that could not be recovered, e.g. a persistent NaN loss (exit code 4)."""

    exit_code = 4


class ClusterError(PtychoError):
    """A worker of a multi-worker training died or could not be reached (exit code 1, like an
    internal error: the run itself was sound, and restarting every worker with resume continues it)."""

    exit_code = 1
