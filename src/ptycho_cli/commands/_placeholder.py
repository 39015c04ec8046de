"""A command whose issue has not landed yet: says so and exits 1."""

from __future__ import annotations

import typer

from ptycho_cli.specs import CommandSpec


def placeholder(name: str, summary: str) -> CommandSpec:
    def command(ctx: typer.Context) -> None:
        typer.echo(f"error: `ptycho {name}` is not implemented yet", err=True)
        raise typer.Exit(1)

    command.__doc__ = f"{summary} (not implemented yet)"
    return CommandSpec(
        name, command, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )
