"""The built-in objects, probes, scans, models, A/B variants and importers as registry records. The shell
exposes these through its built-in plugins; library users get them from ``Components.builtin()``."""

from __future__ import annotations

from typing import Any

from ptycho.physics import object as objects
from ptycho.physics import probe as probes
from ptycho.physics import scan as scans
from ptycho.physics.packaged_probe import aberrated_probe
from ptycho.registry import ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec


def builtin_object_specs() -> list[ObjectSpec]:
    return [
        ObjectSpec("lines", objects.lines_pattern, "random line segments, multi-scale smoothed"),
        ObjectSpec("grf", objects.grf_pattern, "Gaussian random field"),
        ObjectSpec("points", objects.points_pattern, "random point scatterers"),
        ObjectSpec("diagonals", objects.diagonals_pattern, "diagonal stripes of varying period"),
        ObjectSpec("siemens", objects.siemens_pattern, "Siemens star"),
        ObjectSpec("image", objects.image_pattern, "image:PATH — any image file as grey levels"),
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
    """The built-in ``debug-ab`` variants (grid/nongrid, gs1/gs2, nll/mae, probe-ideal/probe-file,
    dose-high/dose-low)."""
    from ptycho.debug.variants import builtin_variant_specs as variants

    return variants()


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
