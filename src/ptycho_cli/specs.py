"""The small frozen records plugin hooks return.

``CommandSpec`` belongs to the shell; the physics records are defined in the core
(:mod:`ptycho.registry`) and re-exported here so a plugin needs a single import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptycho.registry import ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand: ``callback`` is a Typer command function (annotated parameters).

    ``help`` defaults to the callback's docstring. ``callback`` may take a first parameter
    ``ctx: typer.Context``; ``ctx.obj`` is the :class:`ptycho_cli.plugins.PluginHost`.
    """

    name: str
    callback: Callable[..., Any]
    help: str | None = None
    context_settings: dict[str, Any] | None = None


__all__ = ["CommandSpec", "ModelSpec", "ObjectSpec", "ProbeSpec", "ScanSpec", "VariantSpec"]
