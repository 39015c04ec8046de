"""The built-in objects, probes, scans, models, A/B variants and importers as registry records. The
shell exposes these through its built-in plugins; library users get them from
``Components.builtin()``. This module imports only the records (:mod:`ptycho.records`), the
physics and the importers, so the registry can load it without an import cycle."""

from __future__ import annotations

from typing import Any

from ptycho.physics import object as objects
from ptycho.physics import probe as probes
from ptycho.physics import scan as scans
from ptycho.physics.packaged_probe import aberrated_probe
from ptycho.records import ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec

DOSE_HIGH = 1e9
"""Photons per pattern of the ``dose-high`` variant (the default dose of ``simulate``)."""
DOSE_LOW = 1e4
"""Photons per pattern of the ``dose-low`` variant."""


def builtin_object_specs() -> list[ObjectSpec]:
    return [
        ObjectSpec("lines", objects.lines_pattern, "random line segments, multi-scale smoothed"),
        ObjectSpec("grf", objects.grf_pattern, "Gaussian random field"),
        ObjectSpec("points", objects.points_pattern, "random point scatterers"),
        ObjectSpec("diagonals", objects.diagonals_pattern, "diagonal stripes of varying period"),
        ObjectSpec("siemens", objects.siemens_pattern, "Siemens star"),
        ObjectSpec("image", objects.image_pattern, "image:PATH — any image file as grey levels"),
        ObjectSpec("file", objects.file_object,
                   "file:PATH[:KEY] — a complex transmission (.npz key, default 'object', or .npy), its specimen "
                   "region resampled to fill the object"),
    ]


def builtin_probe_specs() -> list[ProbeSpec]:
    return [
        ProbeSpec("ideal", probes.ideal_probe, "smoothed disk aperture, optional defocus"),
        ProbeSpec("gaussian", probes.gaussian_probe, "Gaussian beam"),
        ProbeSpec("file", probes.file_probe, "file:PATH — dataset, PtychoPINN NPZ or Ptychodus product"),
        ProbeSpec("aberrated", aberrated_probe,
                  "structured aberrated ring probe shipped with ptycho, Fourier-resampled to N"),
    ]


def builtin_scan_specs() -> list[ScanSpec]:
    return [
        ScanSpec("random", scans.random_scan, "uniform random positions (nongrid)"),
        ScanSpec("grid", scans.grid_scan, "raster with step and optional jitter"),
    ]


def builtin_model_specs() -> list[ModelSpec]:
    from ptycho.models.network import build_cnn

    return [ModelSpec("cnn", build_cnn, "encoder + amplitude/phase decoders (space-to-depth, conv-pool)")]


def builtin_variant_specs() -> list[VariantSpec]:
    """The built-in ``debug-ab`` variants (docs/debug-ab.md#variants). Paired variants set the same
    key, so a pair differs in exactly that setting."""
    return [
        VariantSpec("grid", {"simulate.scan.kind": "grid"}, "raster scan"),
        VariantSpec("nongrid", {"simulate.scan.kind": "random"}, "uniform random scan"),
        VariantSpec("gs1", {"simulate.gridsize": 1}, "no grouping (gridsize 1)"),
        VariantSpec("gs2", {"simulate.gridsize": 2}, "groups of 2×2 neighbours (gridsize 2)"),
        VariantSpec("nll", {"train.loss": "nll"}, "Poisson negative log-likelihood on counts"),
        VariantSpec("mae", {"train.loss": "mae"}, "mean absolute error on amplitudes"),
        VariantSpec("probe-ideal", {"simulate.probe.kind": "ideal"}, "ideal smoothed-disk probe with defocus"),
        VariantSpec("probe-file", {"simulate.probe.kind": "aberrated"},
                    "structured, aberrated probe shipped with ptycho (resources/probe_aberrated.npz)"),
        VariantSpec("dose-high", {"simulate.nphotons": DOSE_HIGH}, f"{DOSE_HIGH:.0e} photons per pattern"),
        VariantSpec("dose-low", {"simulate.nphotons": DOSE_LOW}, f"{DOSE_LOW:.0e} photons per pattern"),
    ]


def builtin_importer_specs() -> list[ImporterSpec]:
    """The formats ``ptycho import`` reads out of the box (sniffed in this order)."""
    from ptycho.io.importers import builtin_importer_specs as importers

    return importers()


def builtin_specs() -> dict[str, list[Any]]:
    """Every built-in record, keyed like :meth:`ptycho.registry.Components.from_specs`."""
    return {
        "objects": builtin_object_specs(),
        "probes": builtin_probe_specs(),
        "scans": builtin_scan_specs(),
        "models": builtin_model_specs(),
        "variants": builtin_variant_specs(),
        "importers": builtin_importer_specs(),
    }
