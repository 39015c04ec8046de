"""``ptycho plugins``: list plugins, their versions, hooks and what each provides."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.specs import CommandSpec


def plugins_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List installed plugins, their versions, hooks and what each provides.

    Examples:

      ptycho plugins

      ptycho plugins --json
    """
    from rich.console import Console
    from rich.table import Table

    from ptycho_cli.plugins import describe_plugins

    host = ctx.obj
    records = describe_plugins(host)
    broken = [{"name": b.name, "reason": b.reason} for b in host.broken]
    if as_json:
        typer.echo(json.dumps({"plugins": records, "broken": broken}, indent=2))
        return
    table = Table(title="ptycho plugins", title_justify="left")
    for column in ("plugin", "version", "provides", "hooks"):
        table.add_column(column, overflow="fold")
    for rec in records:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in rec["provides"].items())
        table.add_row(rec["name"], rec["version"], provides, ", ".join(rec["hooks"]))
    for b in broken:
        table.add_row(f"[red]{b['name']}[/red]", "", f"[red]skipped: {b['reason']}[/red]", "")
    Console().print(table)


@hookimpl
def ptycho_commands():
    return [CommandSpec("plugins", plugins_command)]
