"""Typed records for the pluggable parts of the core: what an object generator, a probe maker, a
scan pattern, a network architecture, an A/B variant or a file importer is. Plugins return them through the
shell's hooks; :mod:`ptycho.builtins` lists the built-in ones; :mod:`ptycho.registry` collects
them into the :class:`~ptycho.registry.Components` a workflow receives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ImporterSpec", "ModelSpec", "ObjectSpec", "ProbeSpec", "ScanSpec", "VariantSpec"]


@dataclass(frozen=True)
class ObjectSpec:
    """A synthetic object generator.

    ``generate(size, rng, config, arg)`` returns a real ``(size, size)`` pattern in ``[0, 1]``
    (mapped to amplitude and phase by the configured ranges), or a complex ``(size, size)``
    transmission used as it is (``file:``); ``config`` is the :class:`~ptycho.config.ObjectConfig`,
    ``arg`` the text after ``name:`` in the object kind (``image:PATH`` → ``"PATH"``), else ``None``.
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
