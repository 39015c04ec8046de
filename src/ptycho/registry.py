"""Typed records for the pluggable parts of the core, and the collection a workflow receives.

The core never discovers plugins itself: the shell collects these records from the
``ptycho_objects`` / ``ptycho_probes`` / ``ptycho_scans`` / ``ptycho_models`` /
``ptycho_ab_variants`` / ``ptycho_importers`` hooks and hands a :class:`Components` to the workflows. Library users
call :meth:`Components.builtin`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import numpy as np

from ptycho.errors import ConfigError


@dataclass(frozen=True)
class ObjectSpec:
    """A synthetic object generator.

    ``generate(size, rng, config, arg)`` returns a real ``(size, size)`` pattern in ``[0, 1]``;
    ``config`` is the :class:`~ptycho.config.ObjectConfig`, ``arg`` the text after ``name:`` in
    the object kind (``image:PATH`` → ``"PATH"``), else ``None``.
    """

    name: str
    generate: Callable[[int, np.random.Generator, Any, str | None], np.ndarray]
    description: str = ""


@dataclass(frozen=True)
class ProbeSpec:
    """A probe maker. ``make(N, config, arg)`` returns a complex ``(N, N)`` probe of any
    scale; the core normalises it to the photon budget."""

    name: str
    make: Callable[[int, Any, str | None], np.ndarray]
    description: str = ""


@dataclass(frozen=True)
class ScanSpec:
    """A scan pattern. ``make(object_shape, N, config, rng)`` returns ``(x, y)`` float64 arrays
    of probe-centre positions in object pixels, every window inside the object."""

    name: str
    make: Callable[[tuple[int, int], int, Any, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    description: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """A network architecture. ``build(config)`` returns an uncompiled Keras model mapping the
    features ``(B, N, N, k·C)`` (``k = config.input_channels``: normalised √counts, then Re and Im
    of the global or group estimate, if the model reads one) to ``(amplitude, phase)``, each
    ``(B, N, N, C)``."""

    name: str
    build: Callable[[Any], Any]
    description: str = ""


@dataclass(frozen=True)
class VariantSpec:
    """A named A/B variant for ``debug-ab``: dotted config keys and their values."""

    name: str
    settings: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True)
class ImporterSpec:
    """A file format ``ptycho import`` reads.

    ``sniff(path) -> bool`` tells cheaply whether ``path`` is in this format (it must never
    raise: ``False`` when in doubt). ``read(path) -> ImportedScan``
    (:class:`ptycho.io.importers.ImportedScan`) returns the scan *in the source's conventions*,
    saying which they are (zero-frequency layout, positions in object pixels or metres, probe
    modes, mask of valid pixels, physical quantities); the import workflow does every conversion
    and records it. ``suffixes`` are the file endings the format uses (for help texts).
    """

    name: str
    sniff: Callable[[Any], bool]
    read: Callable[[Any], Any]
    description: str = ""
    suffixes: tuple[str, ...] = ()


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
