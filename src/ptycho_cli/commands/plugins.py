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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print why each skipped plugin failed "
                                                                 "(its traceback).")] = False,
) -> None:
    """List installed plugins, their versions, hooks and what each provides.

    Skipped plugins, records dropped because another plugin provides the same name, and
    warnings are listed too; --verbose adds each failure's traceback.

    Examples:

      ptycho plugins

      ptycho plugins --json

      ptycho plugins --verbose
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ptycho_cli.plugins import describe_plugins

    host = ctx.obj
    records = describe_plugins(host)
    broken = [{"name": b.name, "reason": b.reason, **({"traceback": b.detail} if verbose and b.detail else {})}
              for b in host.broken]
    clashes = [{"plugin": c.plugin, "kind": c.kind, "name": c.record, "provided_by": c.winner} for c in host.clashes]
    if as_json:
        typer.echo(json.dumps({"plugins": records, "broken": broken, "clashes": clashes,
                               "warnings": list(host.warnings)}, indent=2))
        return
    table = Table(title="ptycho plugins", title_justify="left")
    for column in ("plugin", "version", "provides", "hooks"):
        table.add_column(column, overflow="fold")
    for rec in records:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in rec["provides"].items())
        table.add_row(rec["name"], rec["version"], provides, ", ".join(rec["hooks"]))
    for b in broken:
        table.add_row(f"[red]{escape(b['name'])}[/red]", "", f"[red]skipped: {escape(b['reason'])}[/red]", "")
    for c in host.clashes:
        table.add_row(escape(c.plugin), "", f"[yellow]{escape(c.kind)} '{escape(c.record)}' ignored: "
                                            f"provided by {escape(c.winner)}[/yellow]", "")
    console = Console()
    console.print(table)
    if verbose:
        for b in host.broken:
            if b.detail:
                console.print(f"\n[bold]{escape(b.name)}[/bold]: {escape(b.reason)}")
                console.print(escape(b.detail.rstrip()), highlight=False)


@hookimpl
def ptycho_commands():
    return [CommandSpec("plugins", plugins_command)]
