"""``import``: another tool's scan → the canonical dataset, every conversion recorded.

Steps, in order (each recorded in ``metadata["conversions"]`` and summed up in the result):

1. choose the importer (``import.format``, else the first that recognises the file);
2. check shapes: patterns ``(M, n_y, n_x)``, one position per pattern, probe and mask of the
   pattern size;
3. zero frequency: ``import.dc``, else the format's convention, else detected from a sample of
   patterns (:func:`ptycho.data.detector.detect_dc`), refusing when the patterns do not tell;
   corner-layout patterns (and mask) are ``fftshift``-ed to DC-centred;
4. patterns larger than ``import.N`` are centre-cropped or binned (:mod:`ptycho.data.resample`);
5. valid pixels: the file's mask and ``import.mask``, less the hot/dead pixels found;
6. positions to object pixels: pixel positions are rescaled with the object pixel; metres are
   divided by the object pixel ``λz/(N·dx_detector)``, the first window starting at pixel 0;
7. probe: ``import.probe``, else the file's modes (all of them, a mixed state ``(K, N, N)``), else
   a guess from the mean pattern; its (summed) power set to the photons estimated from the counts
   when asked (``import.probe_power``);
8. write atomically (HDF5 streamed chunk by chunk, or NPZ), refusing NaN, Inf or negative counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.config.importing import ImportConfig
from ptycho.data.detector import find_bad_pixels, photon_estimate
from ptycho.data.resample import plan_reduction
from ptycho.errors import ConfigError, DataError, field
from ptycho.io.importers.record import ImportedScan
from ptycho.registry import Components, ImporterSpec, Table
from ptycho.workflows.probe_setup import PROBE_GUESS_KEY
from ptycho.workflows.import_steps import (
    Converter,
    check_shapes,
    mode_summary,
    object_pixel_size_m,
    physical_quantities,
    probe_gauge,
    probe_modes,
    probe_positions,
    sample_patterns,
    source_valid,
    zero_frequency,
)

__all__ = ["ImportResult", "import_dataset", "object_pixel_size_m"]

WRITE_CHUNK = 256
"""Patterns converted and written at a time."""


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_dataset` wrote and did (``steps``: the conversions, in order)."""

    path: Path
    format: str
    n_patterns: int
    source_shape: tuple[int, int]
    N: int
    zero_frequency: str
    reduction: str
    pixel_size_m: float | None
    probe: str
    probe_modes: int
    probe_photons: float
    photons_estimated: float
    valid_pixels: int
    bad_pixels: int
    steps: tuple[str, ...]
    seconds: float


def _check_paths(source: Path, out: Path, config: ImportConfig) -> str:
    from ptycho.io.datasets import output_format

    if not source.exists():
        raise DataError(f"{source}: file not found")
    fmt = output_format(out, None)
    if out.exists() and out.resolve() == source.resolve():
        raise ConfigError(f"{out}: the output is the input file; choose another output name")
    if out.exists() and not config.overwrite:
        raise ConfigError(f"{out}: exists; choose another output or set {field('import.overwrite')} to replace it")
    return fmt


def _file_keys(path: Path) -> str:
    """A hint of what the file holds, for the 'unknown layout' message."""
    import h5py

    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return "keys " + (", ".join(sorted(npz.files)) or "none")
        with h5py.File(path, "r") as f:
            return "top-level names " + (", ".join(sorted(f.keys())) or "none")
    except Exception:  # noqa: BLE001 - only a hint: any unreadable file is just "not recognised"
        return "an unreadable or unknown file type"


def choose_importer(source: Path, name: str | None, importers: Table[ImporterSpec]) -> ImporterSpec:
    """The importer named ``name`` (ConfigError if unknown), else the first that sniffs ``source``."""
    if name is not None:
        return importers.get(name, field_name="import.format")[0]
    for spec in importers.entries.values():
        try:
            recognised = spec.sniff(source)
        except Exception:  # noqa: BLE001 - a sniff must not raise; a plugin's that does just says no
            recognised = False
        if recognised:
            return spec
    raise DataError(f"{source}: unknown layout ({_file_keys(source)}); no importer recognises it (tried "
                    f"{', '.join(importers.names())}); name one with {field('import.format')} if it is one of them")


@dataclass
class _Plan:
    """Everything decided from the sample; the patterns themselves follow in :func:`_write`."""

    convert: Converter
    x: np.ndarray
    y: np.ndarray
    probe: np.ndarray
    object: np.ndarray | None
    mask: np.ndarray | None
    metadata: dict[str, Any]
    result: dict[str, Any]


def _plan(config: ImportConfig, scan: ImportedScan, where: str) -> _Plan:
    steps = list(scan.conversions)
    M, n_y, n_x = check_shapes(scan, where)
    reduction = plan_reduction(n_y, n_x, config.N, config.reduce)
    sample = sample_patterns(scan, config)
    valid_src = source_valid(scan, config, n_y, n_x, steps)
    layout, how = zero_frequency(config, scan, sample, valid_src, where)
    if layout == "corner":
        steps.append("patterns (and mask) fftshift-ed: zero frequency from the corner to the centre")
    convert = Converter(layout, reduction)
    if reduction.method != "none":
        steps.append(f"patterns {n_y}×{n_x} → {reduction.N}×{reduction.N} by {reduction.method}"
                     + (f" (factor {reduction.factor})" if reduction.factor > 1 else " (central pixels)"))
    sample_out, valid = convert.patterns(sample), convert.mask(valid_src)
    hot, dead = find_bad_pixels(sample_out, valid) if config.detect_bad_pixels else (valid & False,) * 2
    if hot.any() or dead.any():
        steps.append(f"{int(hot.sum())} hot/saturated and {int(dead.sum())} dead pixels found and masked")
        valid = valid & ~hot & ~dead
    physical = physical_quantities(config, scan)
    x, y, dx, origin = probe_positions(scan, reduction, physical, where, steps)
    modes, probe_source = probe_modes(config, scan, convert, sample_out, valid, steps)
    probe, mode_info = mode_summary(modes, steps)
    estimate = photon_estimate(sample_out, valid, probe)
    factor, gauge = probe_gauge(config, probe, probe_source, estimate, steps)
    obj = scan.object
    if obj is not None and reduction.object_pixel_scale != (1.0, 1.0):
        steps.append("object dropped: its pixels no longer match the resampled object pixel")
        obj = None
    detector = {"source_shape": [n_y, n_x], "reduce": reduction.method, "factor": reduction.factor,
                "valid_pixels": int(valid.sum()), "hot_pixels_found": int(hot.sum()),
                "dead_pixels_found": int(dead.sum())}
    probe_info = {"source": probe_source, **mode_info, **gauge}
    metadata = _metadata(scan, where, physical, reduction.factor, dx, origin, layout, how, detector, probe_info, steps)
    result = {"zero_frequency": f"{layout} ({how})", "reduction": _reduction_text(reduction), "pixel_size_m": dx,
              "probe": probe_source, "probe_modes": len(modes), "probe_photons": gauge["power"],
              "photons_estimated": estimate, "valid_pixels": int(valid.sum()),
              "bad_pixels": int(hot.sum() + dead.sum())}
    return _Plan(convert, x, y, (probe * factor).astype(np.complex64), obj, None if valid.all() else valid,
                 metadata, result)


def _reduction_text(reduction: Any) -> str:
    if reduction.method == "none":
        return "none"
    return f"{reduction.method} {reduction.n_y}×{reduction.n_x} → {reduction.N}×{reduction.N}"


def _metadata(scan: ImportedScan, where: str, physical: dict[str, float | None], factor: int, dx: float | None,
              origin: dict[str, float], layout: str, how: str, detector: dict[str, Any], probe: dict[str, Any],
              steps: list[str]) -> dict[str, Any]:
    """The written dataset's metadata: the source's own, then what the import found and did."""
    known = {k: v for k, v in physical.items() if v is not None}
    if "detector_pixel_size_m" in known:  # the pixel of the written (binned) patterns
        known["detector_pixel_size_m"] *= factor
    metadata = {**scan.metadata, **known, **origin, "imported_from": {"path": where, "format": scan.format},
                "zero_frequency": {"source": layout, "how": how}, "detector": detector, "probe": probe,
                PROBE_GUESS_KEY: probe["source"] == "guess", "conversions": steps}
    if dx is not None:
        metadata["pixel_size_m"] = dx
    return metadata


def _checked(block: np.ndarray, start: int, where: str) -> np.ndarray:
    """Refuse NaN, Inf and negative counts (pattern index named), before anything is written."""
    if not np.isfinite(block).all():
        bad = start + int(np.argmax(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
        raise DataError(f"{where}: pattern {bad} contains NaN or Inf; expected finite counts")
    if block.size and block.min() < 0:
        bad = start + int(np.argmax((block < 0).reshape(len(block), -1).any(axis=1)))
        raise DataError(f"{where}: pattern {bad} has negative counts (min {block.min():g}); expected counts ≥ 0 "
                        "(subtract the background with clipping before import)")
    return block


def _write(out: Path, fmt: str, scan: ImportedScan, plan: _Plan, where: str) -> None:
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import save_dataset
    from ptycho.io.h5 import H5DatasetWriter

    M, N = scan.n_patterns, plan.convert.reduction.N
    arrays = {"x": plan.x, "y": plan.y, "probe": plan.probe, "object": plan.object, "scan_index": scan.scan_index,
              "metadata": plan.metadata, "mask": plan.mask}
    blocks = ((start, _checked(plan.convert.patterns(np.asarray(scan.patterns[start:start + WRITE_CHUNK])),
                               start, where)) for start in range(0, M, WRITE_CHUNK))
    if fmt == "h5":
        with H5DatasetWriter(out, n_patterns=M, N=N, **arrays) as writer:
            for start, block in blocks:
                writer.write(start, block)
        return
    diffraction = np.concatenate([block for _, block in blocks])
    save_dataset(out, Dataset(diffraction=diffraction, **arrays), format=fmt)


def import_dataset(config: ImportConfig, source: Path, out: Path,
                   importers: Table[ImporterSpec] | None = None) -> ImportResult:
    """Convert ``source`` (any format an importer reads) into the canonical dataset ``out``.

    Raises
    ------
    ConfigError
        Unknown ``import.format``, bad output name, output = input, output exists (exit code 2).
    DataError
        Unknown layout, inconsistent shapes, ambiguous zero frequency, missing physical
        quantities, bad counts (exit code 3). No output file is left behind.
    """
    t0 = time.perf_counter()
    source, out = Path(source), Path(out)
    fmt = _check_paths(source, out, config)
    spec = choose_importer(source, config.format, importers or Components.builtin().importers)
    scan = spec.read(source)
    try:
        plan = _plan(config, scan, str(source))
        _write(out, fmt, scan, plan, str(source))
    finally:
        scan.close()
    N = plan.convert.reduction.N
    shape = (plan.convert.reduction.n_y, plan.convert.reduction.n_x)
    return ImportResult(out, spec.name, scan.n_patterns, shape, N, steps=tuple(plan.metadata["conversions"]),
                        seconds=time.perf_counter() - t0, **plan.result)
