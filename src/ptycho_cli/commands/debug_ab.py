"""`ptycho debug-ab`: Run two pipeline variants side by side."""

from __future__ import annotations

from ptycho_cli.commands._placeholder import placeholder
from ptycho_cli.hookspecs import hookimpl


@hookimpl
def ptycho_commands():
    return [placeholder("debug-ab", "Run two pipeline variants side by side")]
