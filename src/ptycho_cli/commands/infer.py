"""`ptycho infer`: Reconstruct per-position object patches."""

from __future__ import annotations

from ptycho_cli.commands._placeholder import placeholder
from ptycho_cli.hookspecs import hookimpl


@hookimpl
def ptycho_commands():
    return [placeholder("infer", "Reconstruct per-position object patches")]
