"""`ptycho stitch`: Stitch patches into one object image."""

from __future__ import annotations

from ptycho_cli.commands._placeholder import placeholder
from ptycho_cli.hookspecs import hookimpl


@hookimpl
def ptycho_commands():
    return [placeholder("stitch", "Stitch patches into one object image")]
