"""Pure helpers for layering configuration dicts: deep merge, dotted keys, flattening, and one-line
validation messages. Shared by the shell's config loading and the core's ``debug-ab`` arms."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

QUOTE_CHARS = 60
"""Characters of an offending value quoted in a validation message."""


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``; mappings merge, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dotted_to_nested(key: str, value: Any) -> dict[str, Any]:
    """``"a.b.c", 1`` → ``{"a": {"b": {"c": 1}}}``."""
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def merge_dotted(base: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with every ``dotted.key → value`` of ``settings`` merged in, in order."""
    out = dict(base)
    for key, value in settings.items():
        out = deep_merge(out, dotted_to_nested(key, value))
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2]}`` → ``{"a.b": 1, "c": [2]}`` (lists and scalars are leaves;
    an empty mapping is kept as a leaf so it is not lost)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def validation_message(exc: ValidationError, section: str = "") -> str:
    """``section.dotted.loc: message (got value)`` for each error, joined by ``; ``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (section, *err.get("loc", ())) if p != "")
        msg = err.get("msg", "invalid value")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        got = err.get("input")
        quoted = repr(got)
        if len(quoted) > QUOTE_CHARS:  # never echo an unbounded value
            quoted = quoted[: QUOTE_CHARS - 1] + "…"
        suffix = "" if err.get("type") in {"missing", "model_type"} or isinstance(got, dict) else f" (got {quoted})"
        parts.append(f"{loc}: {msg}{suffix}")
    return "; ".join(parts)
