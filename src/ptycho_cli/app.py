"""The Typer application, built by a factory from a plugin host (never a module global)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ptycho import __version__
from ptycho_cli.plugins import PluginHost, get_plugin_manager

EPILOG = (
    "Examples:\n\n"
    "  ptycho simulate --object lines --gridsize 2 --out data.h5\n\n"
    "  ptycho train data.h5 --out model/ --epochs 10\n\n"
    "  ptycho plugins --json"
)


class OneLineErrorsGroup(TyperGroup):
    """The root command group, printing a usage error (unknown option, missing argument) as one
    line ``error: … (see 'ptycho train --help')`` with exit code 2 instead of a boxed panel."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # Click's usage errors derive from it
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed already
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ptycho {__version__}")
        raise typer.Exit()


def build_app(host: PluginHost) -> typer.Typer:
    """Build the ``ptycho`` Typer app: one subcommand per ``CommandSpec`` the plugins provide.

    Broken plugins are reported on stderr when the app is built; the rest still works.
    """
    app = typer.Typer(
        name="ptycho",
        help="Physics-informed neural network reconstruction of ptychography data.",
        epilog=EPILOG,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        cls=OneLineErrorsGroup,
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        version: Annotated[
            Optional[bool],
            typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
        ] = None,
    ) -> None:
        """Physics-informed neural network reconstruction of ptychography data."""
        ctx.obj = host

    for _plugin, spec in host.commands():
        app.command(name=spec.name, help=spec.help, context_settings=spec.context_settings)(spec.callback)

    for line in host.report_lines():
        typer.echo(line, err=True)
    host.echo = lambda line: typer.echo(line, err=True)  # problems found during a run: at once
    return app


def make_app(*, plugins: Iterable[Any] = (), load_entry_points: bool = False, **kwargs: Any) -> typer.Typer:
    """An app for tests and embedding: built-ins plus in-process ``plugins``."""
    return build_app(get_plugin_manager(plugins=plugins, load_entry_points=load_entry_points, **kwargs))


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    from ptycho_cli.errors import terminate_as_interrupt

    app = build_app(get_plugin_manager())
    try:
        with terminate_as_interrupt():
            app(args=list(argv) if argv is not None else None, prog_name="ptycho", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
