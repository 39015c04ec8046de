"""The defaults ``--help`` shows, read from the config models (one source of truth).

A typed flag defaults to ``None`` (not given: the config file or the model's default decides), so
Typer has nothing to show; :func:`default_of` gives the model's default as text for
``typer.Option(show_default=...)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_of(model: type[BaseModel], dotted: str) -> str:
    """The default of field ``dotted`` (``"model.n_filters_scale"``) of ``model`` as help text.

    Raises
    ------
    KeyError
        If the path names no field (a test runs every command's ``--help``).
    """
    *parents, name = dotted.split(".")
    target: Any = model
    for part in parents:
        target = target.model_fields[part].annotation
    return _text(target.model_fields[name].get_default(call_default_factory=True))
