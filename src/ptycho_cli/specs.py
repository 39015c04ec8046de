"""The small frozen records plugin hooks return.

``CommandSpec`` belongs to the shell; the physics records are defined in the core
(:mod:`ptycho.registry`) and re-exported here so a plugin needs a single import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptycho.registry import ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand: ``callback`` is a Typer command function (annotated parameters).

    ``help`` defaults to the callback's docstring. ``callback`` may take a first parameter
    ``ctx: typer.Context``; ``ctx.obj`` is the :class:`ptycho_cli.plugins.PluginHost`.
    ``config_section`` names the top-level key the command reads from a shared ``--config`` file
    (``resolve_config``'s ``section``): declared, it tells every other command that a file holding
    only that key is sectioned, not a flat file of unknown fields.
    """

    name: str
    callback: Callable[..., Any]
    help: str | None = None
    context_settings: dict[str, Any] | None = None
    config_section: str | None = None


__all__ = ["CommandSpec", "ImporterSpec", "ModelSpec", "ObjectSpec", "ProbeSpec", "ScanSpec", "VariantSpec"]
