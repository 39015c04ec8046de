"""Options every command shares (docs/cli.md#configuration), as reusable Typer annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigFiles = Annotated[
    Optional[list[Path]],
    typer.Option("--config", "-c", help="YAML/TOML config file (repeatable; later files win).", show_default=False),
]
SetItems = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override one setting: dotted.key=value (repeatable).", show_default=False),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final result.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More output; tracebacks on errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]
