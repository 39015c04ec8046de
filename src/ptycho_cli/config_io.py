"""Configuration resolution: defaults < ``--config`` files (left to right) < ``--set`` < flags,
then one Pydantic validation.

A config file is YAML or TOML. It may hold one section per command (``simulate:``, ``train:``,
…) so a single file configures a whole pipeline, or just the fields of one command.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ptycho.config.merge import deep_merge, dotted_to_nested, validation_message
from ptycho.errors import ConfigError
from ptycho_cli.safe_yaml import load_settings

__all__ = [
    "SECTIONS", "deep_merge", "dotted_to_nested", "parse_set", "read_config_file", "resolve_config", "section_of",
]

SECTIONS = ("simulate", "import", "train", "infer", "stitch", "evaluate", "export", "debug_ab")
MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (settings, never data)."""
PREVIEW_CHARS = 40
"""Characters of a value quoted in a message."""


def _preview(value: Any) -> str:
    """A short quotation of ``value`` (never the whole of an unbounded one)."""
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

M = TypeVar("M", bound=BaseModel)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a dict."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config {path}: {path.stat().st_size} bytes; a settings file is at most "
                          f"{MAX_CONFIG_BYTES} bytes (is it a data file?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot read as UTF-8 text ({type(exc).__name__})") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml", ".json"}:
            data = load_settings(text, f"--config {path}") or {}
        else:
            raise ConfigError(f"--config {path}: unsupported suffix '{path.suffix}'; use .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"--config {path}: cannot parse ({first})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping at the top level")
    return data


def section_of(data: Mapping[str, Any], section: str, known: Iterable[str] = SECTIONS) -> dict[str, Any]:
    """The part of a config file for ``section``: its own key if present; nothing if the file is
    sectioned for other commands only (a key among ``known`` sections); else the whole file (a
    file for one command)."""
    if section in data:
        value = data.get(section) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{section}' holds {type(value).__name__} {_preview(value)}; "
                              f"expected a mapping of settings, e.g. '{section}: {{seed: 1}}'")
        return dict(value)
    known = set(known)
    if any(key in known for key in data):
        return {}
    return dict(data)


def parse_set(item: str, section: str) -> dict[str, Any]:
    """Parse one ``--set dotted.key=value``; the value is read as a YAML scalar (numbers, bools,
    lists). A leading ``section.`` is accepted and dropped."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set scan.n_images=256")
    if key.startswith(section + "."):
        key = key[len(section) + 1:]
    try:
        value = load_settings(raw, f"--set {key}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return dotted_to_nested(key, value)


def resolve_config(
    model: type[M],
    section: str,
    *,
    files: Iterable[Path] = (),
    sets: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    sections: Iterable[str] = SECTIONS,
) -> M:
    """Merge every source in precedence order and validate once.

    ``flags`` maps dotted keys to values; ``None`` values (flag not given) are ignored.
    ``base`` is a starting dict below the files (e.g. a bundle's stored config).
    ``sections`` are the top-level keys that mark a file as sectioned (:func:`section_of`): the
    built-in commands' by default; a command passes ``ctx.obj.config_sections()`` so that the
    sections plugins declare count too. Nothing is looked up behind the caller's back, so the
    same call resolves the same way inside and outside a command.
    """
    merged: dict[str, Any] = dict(base or {})
    known = tuple(sections)
    for path in files:
        merged = deep_merge(merged, section_of(read_config_file(Path(path)), section, known))
    for item in sets:
        merged = deep_merge(merged, parse_set(item, section))
    for key, value in (flags or {}).items():
        if value is not None:
            merged = deep_merge(merged, dotted_to_nested(key, value))
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, section)) from None

