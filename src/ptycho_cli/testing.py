"""Helpers for plugin test suites: run the real ``ptycho`` command in-process::

    from ptycho_cli.testing import invoke

    def test_listed():
        result = invoke("plugins", "--json")
        assert result.exit_code == 0, result.output
"""

from __future__ import annotations

from typing import Any


def installed_app() -> Any:
    """The real ``ptycho`` app: the built-ins and every installed entry point, built afresh
    (``PTYCHO_DISABLE_PLUGINS`` applies)."""
    from ptycho_cli.app import build_app
    from ptycho_cli.plugins import get_plugin_manager

    return build_app(get_plugin_manager())


def invoke(*args: Any) -> Any:
    """Run ``ptycho ARGS`` (each turned into ``str``) on :func:`installed_app` with Typer's
    ``CliRunner``; exceptions propagate. Returns the runner's ``Result``."""
    from typer.testing import CliRunner

    return CliRunner().invoke(installed_app(), [str(a) for a in args], catch_exceptions=False)
