"""A/B variants and the two arms of a ``debug-ab`` run.

A *variant* is a named set of dotted pipeline settings (:class:`~ptycho.registry.VariantSpec`),
built in (:func:`builtin_variant_specs`) or from a plugin (hook ``ptycho_ab_variants``). An *arm*
is what one side of the comparison runs: variant names joined with ``+`` (``gs2+mae``), or
``base`` for none, plus ad-hoc dotted ``key=value`` overrides per arm. Its config is

    PipelineConfig defaults < DebugABConfig sizing < base (config files, overrides, flags)
        < variant settings (left to right) < arm overrides

validated once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ptycho.config.base import to_plain
from ptycho.config.merge import deep_merge, flatten, merge_dotted, validation_message
from ptycho.config.pipeline import PipelineConfig
from ptycho.errors import ConfigError
from ptycho.registry import Components

BASE_VARIANT = "base"
"""The arm name meaning "no variant": the base config plus that arm's overrides only."""
COMBINE = "+"


@dataclass(frozen=True)
class ArmSpec:
    """One side as the user named it.

    ``name``: variant names joined with ``+``, or ``base``; ``overrides``: dotted pipeline keys
    applied last (the command line's per-arm overrides); ``extra``: nested settings applied before the overrides (e.g. an
    arm given as a config file); ``variants``: the variant names, when ``name`` is only a label
    (default: parsed from ``name``); ``label``: ``A`` or ``B``.
    """

    label: str
    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Arm:
    """A resolved arm: the settings it applied over the base and its validated config."""

    spec: ArmSpec
    variants: tuple[str, ...]
    settings: dict[str, Any]
    config: PipelineConfig

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def title(self) -> str:
        """``A (grid)`` — what the report calls this arm."""
        return f"{self.spec.label} ({self.spec.name})"


def available_variants(components: Components) -> list[str]:
    return [BASE_VARIANT, *components.variants.names()]


def variant_names(name: str) -> tuple[str, ...]:
    """``"gs2+mae"`` → ``("gs2", "mae")``; ``"base"`` → ``()``."""
    parts = tuple(p.strip() for p in name.split(COMBINE))
    if not name.strip() or any(not p for p in parts):
        raise ConfigError(f"variant {name!r}: empty name; combine variants as A+B, e.g. gs2+mae")
    return tuple(p for p in parts if p != BASE_VARIANT)


def variant_settings(names: tuple[str, ...], components: Components) -> dict[str, Any]:
    """Dotted settings of ``names`` merged left to right.

    Raises
    ------
    ConfigError
        An unknown name, listing the available ones.
    """
    settings: dict[str, Any] = {}
    for name in names:
        if name not in components.variants:
            raise ConfigError(
                f"unknown variant '{name}'; available: {', '.join(available_variants(components))} "
                f"(combine with '+', e.g. gs2+mae; or use 'base' and give the arm's settings as key=value overrides)"
            )
        spec, _ = components.variants.get(name, field_name="variant")
        settings.update(spec.settings)
    return settings


def resolve_arm(spec: ArmSpec, base: Mapping[str, Any], components: Components) -> Arm:
    """Validate one arm's pipeline config (see the module docstring for the layering).

    Raises
    ------
    ConfigError
        Unknown variant, or settings the pipeline config rejects (named with the arm).
    """
    names = variant_names(spec.name) if spec.variants is None else tuple(spec.variants)
    settings = variant_settings(names, components)
    settings.update(flatten(spec.extra))
    settings.update(spec.overrides)
    merged = merge_dotted(base, settings)
    try:
        config = PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"arm {spec.label} ({spec.name}): {validation_message(exc)}") from None
    return Arm(spec, names, settings, config)


def base_settings(sizing: Mapping[str, Any], user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The nested base both arms start from: the debug-ab sizing beneath the user's settings."""
    return deep_merge(sizing, user or {})


def config_diff(a: PipelineConfig, b: PipelineConfig) -> list[dict[str, Any]]:
    """Every flattened dotted key whose value differs between the two resolved configs."""
    fa, fb = flatten(to_plain(a)), flatten(to_plain(b))
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key), fb.get(key)
        if va != vb:
            rows.append({"key": key, "a": va, "b": vb})
    return rows
