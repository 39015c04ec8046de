"""`ptycho evaluate`: Score a reconstruction against ground truth."""

from __future__ import annotations

from ptycho_cli.commands._placeholder import placeholder
from ptycho_cli.hookspecs import hookimpl


@hookimpl
def ptycho_commands():
    return [placeholder("evaluate", "Score a reconstruction against ground truth")]
