"""The collection of pluggable parts a workflow receives (the records themselves:
:mod:`ptycho.records`, re-exported here).

The core never discovers plugins itself: the shell collects these records from the
``ptycho_objects`` / ``ptycho_probes`` / ``ptycho_scans`` / ``ptycho_models`` /
``ptycho_ab_variants`` / ``ptycho_importers`` hooks and hands a :class:`Components` to the workflows. Library users
call :meth:`Components.builtin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ptycho.errors import ConfigError
from ptycho.records import ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec

__all__ = ["Components", "ImporterSpec", "ModelSpec", "ObjectSpec", "ProbeSpec", "ScanSpec", "Table", "VariantSpec"]


S = TypeVar("S")


@dataclass(frozen=True)
class Table(Generic[S]):
    """Name → spec lookup with a helpful error for unknown names."""

    what: str
    entries: Mapping[str, S] = field(default_factory=dict)

    def get(self, kind: str, *, field_name: str) -> tuple[S, str | None]:
        """Resolve ``name`` or ``name:arg`` to ``(spec, arg)``; raise ConfigError if unknown."""
        name, _, arg = kind.partition(":")
        if name not in self.entries:
            available = ", ".join(sorted(self.entries)) or "none"
            raise ConfigError(
                f"{field_name}: unknown {self.what} '{name}'; available: {available}"
            )
        return self.entries[name], (arg or None)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)


def _table(what: str, specs: Iterable[Any]) -> Table[Any]:
    entries: dict[str, Any] = {}
    for spec in specs:
        if spec.name in entries:
            raise ConfigError(f"two {what}s are registered under the name '{spec.name}'")
        entries[spec.name] = spec
    return Table(what, MappingProxyType(entries))


@dataclass(frozen=True)
class Components:
    """The pluggable parts a workflow may use, already collected and checked for conflicts."""

    objects: Table[ObjectSpec]
    probes: Table[ProbeSpec]
    scans: Table[ScanSpec]
    models: Table[ModelSpec]
    variants: Table[VariantSpec]
    importers: Table[ImporterSpec] = field(default_factory=lambda: Table("importer"))

    @classmethod
    def from_specs(
        cls,
        objects: Iterable[ObjectSpec] = (),
        probes: Iterable[ProbeSpec] = (),
        scans: Iterable[ScanSpec] = (),
        models: Iterable[ModelSpec] = (),
        variants: Iterable[VariantSpec] = (),
        importers: Iterable[ImporterSpec] = (),
    ) -> "Components":
        return cls(
            objects=_table("object", objects),
            probes=_table("probe", probes),
            scans=_table("scan", scans),
            models=_table("model", models),
            variants=_table("variant", variants),
            importers=_table("importer", importers),
        )

    @classmethod
    def builtin(cls) -> "Components":
        """The built-in objects, probes, scans, models, variants and importers, without any plugin."""
        from ptycho.builtins import builtin_specs

        return cls.from_specs(**builtin_specs())
