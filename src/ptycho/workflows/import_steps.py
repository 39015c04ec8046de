"""The steps of ``ptycho import`` (:mod:`ptycho.workflows.import_data`): shape checks, the
zero-frequency decision, valid pixels, positions, probe modes and the photon gauge."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ptycho.config.importing import ImportConfig
from ptycho.data.detector import detect_dc
from ptycho.data.resample import Reduction
from ptycho.errors import DataError, field
from ptycho.io.importers.record import ImportedScan
from ptycho.io.ptychodus.product import detector_pixel_size_m

__all__ = ["Converter", "SAMPLE_BYTES", "check_shapes", "mode_summary", "object_pixel_size_m", "physical_quantities",
           "probe_gauge", "probe_modes", "probe_positions", "sample_patterns", "source_valid", "zero_frequency"]

SAMPLE_BYTES = 1 << 27
"""Most bytes the statistics sample of patterns may take (fewer patterns for big detectors)."""


def object_pixel_size_m(photon_energy_eV: float, distance_m: float, N: int, detector_pixel_m: float) -> float:
    """Object-plane pixel of far-field ptychography, ``λ z / (N · dx_detector)``: the Fraunhofer
    relation is symmetric, so it is Ptychodus' detector-pixel formula with the roles swapped."""
    return detector_pixel_size_m(photon_energy_eV, distance_m, N, detector_pixel_m)


def check_shapes(scan: ImportedScan, where: str) -> tuple[int, int, int]:
    """``(M, n_y, n_x)`` after checking every array against the patterns (DataError otherwise)."""
    shape = tuple(int(s) for s in scan.patterns.shape)
    if len(shape) != 3 or shape[0] == 0:
        raise DataError(f"{where}: inconsistent shapes: patterns have shape {shape}; expected (M, n_y, n_x), M ≥ 1")
    M, n_y, n_x = shape
    pairs = [("x", scan.x), ("y", scan.y)] if scan.x is not None else [("x_m", scan.x_m), ("y_m", scan.y_m)]
    if scan.scan_index is not None:
        pairs.append(("scan_index", scan.scan_index))
    for key, values in pairs:
        if values is None or np.shape(values) != (M,):
            raise DataError(f"{where}: inconsistent shapes: {M} patterns but {key} has shape "
                            f"{None if values is None else np.shape(values)}; expected ({M},)")
        if not np.isfinite(np.asarray(values, np.float64)).all():
            raise DataError(f"{where}: positions ({key}) contain NaN or Inf; expected finite numbers")
    if scan.probe is not None and scan.probe.shape[-2:] != (n_y, n_x):
        raise DataError(f"{where}: inconsistent shapes: probe modes {scan.probe.shape} but patterns are "
                        f"{n_y}×{n_x}; the probe must match the detector patterns")
    if scan.mask is not None and np.shape(scan.mask) != (n_y, n_x):
        raise DataError(f"{where}: inconsistent shapes: mask {np.shape(scan.mask)} but patterns are {n_y}×{n_x}")
    if scan.object is not None and np.ndim(scan.object) != 2:
        raise DataError(f"{where}: object has shape {np.shape(scan.object)}; expected (H, W)")
    for key, values in (("probe", scan.probe), ("object", scan.object)):
        if values is not None and not np.isfinite(values).all():
            raise DataError(f"{where}: the {key} contains NaN or Inf; expected finite numbers")
    return M, n_y, n_x


def sample_patterns(scan: ImportedScan, config: ImportConfig) -> np.ndarray:
    """An even sample of the patterns (bounded in bytes), as float32."""
    M, n_y, n_x = scan.patterns.shape
    count = max(1, min(M, config.sample_patterns, SAMPLE_BYTES // (4 * n_y * n_x)))
    index = np.unique(np.linspace(0, M - 1, count).round().astype(np.int64))
    return np.asarray(scan.patterns[index] if len(index) < M else scan.patterns[()], np.float32)


def zero_frequency(config: ImportConfig, scan: ImportedScan, sample: np.ndarray, valid: np.ndarray,
                   where: str) -> tuple[str, str]:
    """The source layout (``"centre"``/``"corner"``) and how it was decided."""
    found = detect_dc(sample.mean(axis=0), valid)
    if config.dc != "auto":
        return config.dc, "given (import.dc)"
    if scan.dc is not None:
        if found.layout is not None and found.layout != scan.dc:
            warnings.warn(f"{where}: the patterns look DC-{found.layout} (ratio {found.ratio:.3g}) but the "
                          f"{scan.format} format puts the zero frequency at the {scan.dc}; set "
                          f"{field('import.dc')} if the file breaks its format's convention", UserWarning, stacklevel=3)
        return scan.dc, f"{scan.format} convention"
    if found.layout is None:
        evidence = ("the centre or the corners are mostly masked (a beamstop?)" if np.isnan(found.ratio) else
                    f"the patterns' counts near the centre and near the corners differ only {found.ratio:.3g}-fold "
                    "(need ≥ 4 either way)")
        raise DataError(f"{where}: ambiguous zero frequency: {evidence}; set {field('import.dc')} to centre or corner")
    return found.layout, f"detected (centre/corner counts {found.ratio:.3g})"


def source_valid(scan: ImportedScan, config: ImportConfig, n_y: int, n_x: int, steps: list[str]) -> np.ndarray:
    """``(n_y, n_x)`` valid pixels in the source's layout: the file's mask and ``import.mask``."""
    from ptycho.io.datasets import load_mask

    valid = np.ones((n_y, n_x), bool) if scan.mask is None else np.asarray(scan.mask, bool).copy()
    if config.mask is not None:
        extra = load_mask(config.mask)
        if extra.shape != (n_y, n_x):
            raise DataError(f"{config.mask}: inconsistent shapes: mask {extra.shape} but the source patterns "
                            f"are {n_y}×{n_x}; {field('import.mask')} is in the source's layout")
        valid &= extra
        steps.append(f"mask from {config.mask} applied ({int((~extra).sum())} invalid pixels)")
    return valid


class Converter:
    """Source patterns → canonical ones: DC to the centre, then the reduction."""

    def __init__(self, layout: str, reduction: Reduction) -> None:
        self.corner, self.reduction = layout == "corner", reduction

    def patterns(self, block: np.ndarray) -> np.ndarray:
        block = np.fft.fftshift(block, axes=(-2, -1)) if self.corner else block
        return self.reduction.patterns(block)

    def mask(self, valid: np.ndarray) -> np.ndarray:
        return self.reduction.mask(np.fft.fftshift(valid) if self.corner else valid)

    def probe(self, mode: np.ndarray) -> tuple[np.ndarray, float]:
        return self.reduction.probe(mode)


def physical_quantities(config: ImportConfig, scan: ImportedScan) -> dict[str, float | None]:
    """Energy, distance and detector pixel: the config's, else the file's."""
    return {
        "photon_energy_eV": config.photon_energy_eV or scan.photon_energy_eV,
        "detector_distance_m": config.detector_distance_m or scan.detector_distance_m,
        "detector_pixel_size_m": config.detector_pixel_size_m or scan.detector_pixel_m,
    }


def probe_positions(scan: ImportedScan, reduction: Reduction, physical: dict[str, float | None], where: str,
                    steps: list[str]) -> tuple[np.ndarray, np.ndarray, float | None, dict[str, float]]:
    """Probe centres in object pixels, the object pixel (m, if known) and the world origin."""
    N, b = reduction.N, reduction.factor
    energy, distance, pixel = (physical[k] for k in ("photon_energy_eV", "detector_distance_m",
                                                     "detector_pixel_size_m"))
    known = None not in (energy, distance, pixel)
    dx = object_pixel_size_m(energy, distance, N, pixel * b) if known else None  # type: ignore[operator]
    if scan.x is not None:
        sy, sx = reduction.object_pixel_scale
        x, y = np.asarray(scan.x, np.float64), np.asarray(scan.y, np.float64)
        if (sy, sx) != (1.0, 1.0):
            x, y = x / sx, y / sy
            steps.append(f"positions rescaled to the new object pixel (÷ {sx:g})")
        if dx is None and scan.probe_pixel_m:
            dx = float(scan.probe_pixel_m) * sx
        return x, y, dx, {}
    if not known:
        missing = [field(f"import.{k}") for k in ("photon_energy_eV", "detector_distance_m", "detector_pixel_size_m")
                   if physical[k] is None]
        raise DataError(f"{where}: positions are in metres but the object pixel λz/(N·dx) needs "
                        f"{', '.join(missing)}, which the file does not give; set them")
    half = (N - 1) / 2
    x0, y0 = float(np.min(scan.x_m)), float(np.min(scan.y_m))
    x = (np.asarray(scan.x_m, np.float64) - x0) / dx + half
    y = (np.asarray(scan.y_m, np.float64) - y0) / dx + half
    steps.append(f"positions m → object pixels: ÷ λz/(N·dx_det) = {dx:.6g} m, first window at pixel 0")
    origin = {"position_origin_x_m": x0 - half * dx, "position_origin_y_m": y0 - half * dx}
    return x, y, dx, origin


def probe_guess(sample: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A centred probe whose far-field intensity is the mean pattern (zero phase): a common
    starting guess when nothing better is known."""
    mean = np.where(valid, sample.mean(axis=0), 0.0)
    far = np.sqrt(np.maximum(mean, 0.0))
    near = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(far), norm="ortho"))
    return near.astype(np.complex64)


def probe_modes(config: ImportConfig, scan: ImportedScan, convert: Converter, sample: np.ndarray,
                valid: np.ndarray, steps: list[str]) -> tuple[np.ndarray, str]:
    """``(K, N, N)`` modes in the output sampling and where they came from."""
    from ptycho.io.datasets import load_probe

    N = convert.reduction.N
    if config.probe is not None:
        raw = load_probe(config.probe)
        modes, source = raw.reshape(-1, *raw.shape[-2:]), f"file {config.probe}"  # (K, n, n)
        size = raw.shape[-2:]
        if size != (N, N) and size == (convert.reduction.n_y, convert.reduction.n_x):
            modes = np.stack([convert.probe(mode)[0] for mode in modes])
        elif size != (N, N):
            raise DataError(f"{config.probe}: probe is {size[0]}×{size[1]}; expected {N}×{N} (or the "
                            "source pattern size)")
        return modes.astype(np.complex64), source
    if scan.probe is None:
        steps.append("probe guessed from the mean pattern (zero phase): refine it")
        return probe_guess(sample, valid)[None], "guess"
    resampled = [convert.probe(mode) for mode in scan.probe]
    lost = max(loss for _, loss in resampled)
    if convert.reduction.method != "none":
        steps.append(f"probe resampled for the {convert.reduction.method} ({100 * lost:.2g} % of its power was "
                     "outside the binned field of view)" if lost else f"probe resampled for the "
                     f"{convert.reduction.method}")
    if lost > 0.05:
        warnings.warn(f"binning cuts {100 * lost:.2g} % of the probe's power from the smaller field of view; the "
                      "patterns are undersampled after binning — bin less or crop", UserWarning, stacklevel=3)
    return np.stack([mode for mode, _ in resampled]).astype(np.complex64), "file"


def mode_summary(modes: np.ndarray, steps: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The probe to write — the one mode ``(N, N)``, or every mode ``(K, N, N)`` (a mixed state,
    docs/conventions.md#mixed-state-probes) — and how the power is shared."""
    power = np.sum(np.abs(modes.astype(np.complex128)) ** 2, axis=(1, 2))
    k = int(np.argmax(power))
    total = float(power.sum())
    info = {"modes": int(len(modes)), "dominant_mode": k,
            "mode_power_fractions": [float(p / total) if total else 0.0 for p in power]}
    if len(modes) == 1:
        return modes[0], info
    steps.append(f"{len(modes)} incoherent probe modes kept as a mixed state (mode {k} the strongest, "
                 f"{100 * power[k] / total:.3g} % of the power)")
    return modes.astype(np.complex64), info


def probe_gauge(config: ImportConfig, probe: np.ndarray, source: str, estimate: float,
                steps: list[str]) -> tuple[float, dict[str, Any]]:
    """Factor applied to the probe amplitude so ``Σ|P|²`` follows ``import.probe_power``."""
    power = float(np.sum(np.abs(probe.astype(np.complex128)) ** 2))
    ratio = power / estimate
    keep = config.probe_power == "keep" or (
        config.probe_power == "auto" and source != "guess"
        and 1 / config.probe_power_tolerance <= ratio <= config.probe_power_tolerance)
    info = {"photons_estimated": estimate, "power_in_file": power, "power_over_estimate": ratio}
    if keep:
        return 1.0, {**info, "power": power, "rescaled": False}
    steps.append(f"probe power {power:.4g} set to the photons estimated from the counts, {estimate:.4g} per "
                 "pattern (median over patterns, valid pixels only)")
    return math.sqrt(estimate / power), {**info, "power": estimate, "rescaled": True}
