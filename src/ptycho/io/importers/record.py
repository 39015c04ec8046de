"""What an importer returns: a scan in its source's conventions, with those conventions named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ImportedScan", "probe_modes_of"]


@dataclass(eq=False)
class ImportedScan:
    """A foreign scan as read, before any conversion (the import workflow converts and records).

    Attributes
    ----------
    patterns : (M, n_y, n_x) array-like
        Counts as stored (an open ``h5py.Dataset`` is fine: it is read in chunks).
    format : str
        The importer's name.
    dc : {"centre", "corner"} or None
        Where the format puts the zero frequency; ``None``: no convention, detect it.
    x, y : (M,) float64 or None
        Probe centres in object pixels (docs/conventions.md#windows), when the format stores pixels.
    x_m, y_m : (M,) float64 or None
        Probe centres in metres, when the format stores physical positions.
    probe : (K, n, n) complex or None
        Probe modes in √counts (``K = 1`` for a single mode); ``None`` when the file has none.
    probe_pixel_m : float or None
        Real-space probe sampling, if the file states it.
    object : (H, W) complex or None
    mask : (n_y, n_x) bool or None
        Valid pixels (True = measured), in the patterns' layout.
    photon_energy_eV, detector_distance_m, detector_pixel_m : float or None
    scan_index : (M,) int or None
    metadata : dict
        The source's own metadata (kept under ``metadata["source_metadata"]``).
    conversions : list of str
        Steps the reader already took (e.g. "amplitudes squared to counts").
    """

    patterns: Any
    format: str
    dc: str | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    x_m: np.ndarray | None = None
    y_m: np.ndarray | None = None
    probe: np.ndarray | None = None
    probe_pixel_m: float | None = None
    object: np.ndarray | None = None
    mask: np.ndarray | None = None
    photon_energy_eV: float | None = None
    detector_distance_m: float | None = None
    detector_pixel_m: float | None = None
    scan_index: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    conversions: list[str] = field(default_factory=list)
    closer: Any = field(default=None, repr=False)

    @property
    def n_patterns(self) -> int:
        return int(self.patterns.shape[0])

    def close(self) -> None:
        """Release an open source file (no-op for in-memory data)."""
        if self.closer is not None:
            self.closer()
            self.closer = None


def probe_modes_of(probe: np.ndarray, where: str, conversions: list[str]) -> np.ndarray:
    """``(…, K, n, n)`` → ``(K, n, n)`` complex64 modes: the last three axes are the incoherent
    modes; every axis before them must be singleton, or (pty-chi's OPR axis, tike's leading
    axes) only its first entry is kept, recorded in ``conversions``."""
    from ptycho.errors import DataError

    arr = np.asarray(probe)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise DataError(f"{where}: probe has shape {arr.shape}; expected square (…, K, n, n) modes")
    if arr.ndim == 2:
        return arr[None].astype(np.complex64)
    lead = arr.shape[:-3]
    if any(size > 1 for size in lead):
        conversions.append(f"probe axes {lead} before the modes: kept index 0 of each (the main probe)")
    modes = arr.reshape(-1, *arr.shape[-3:])[0]
    return np.ascontiguousarray(modes, dtype=np.complex64)


def file_keys(path: Path) -> set[str]:
    """Top-level names of an HDF5 or NPZ file; empty for anything unreadable (sniffing never raises)."""
    import h5py

    from ptycho.errors import DataError
    from ptycho.io.npz import NpzReader

    try:
        if path.suffix.lower() in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                return set(f.keys())
        if path.suffix.lower() == ".npz":
            with NpzReader(path) as npz:
                return set(npz.keys)
    except (OSError, ValueError, DataError):
        pass
    return set()
