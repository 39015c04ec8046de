"""Exceptions of the core, each carrying the exit code the command line maps it to (SPEC §12)."""

from __future__ import annotations


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
