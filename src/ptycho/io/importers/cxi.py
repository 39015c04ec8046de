"""CXI files (Coherent X-ray Imaging format, version 1.6; HDF5), read as Ptychodus 1.7 reads them.

==============================================  ========================================================
path                                            meaning (CXI: SI units, no exceptions)
==============================================  ========================================================
``entry_1/data_1/data``                         (M, n_y, n_x) patterns in counts (often a link to
(else ``…/instrument_1/detector_1/data``)       ``detector_1/data``); detector images, no stated
                                                zero-frequency layout: it is detected
``entry_1/sample_1/geometry_1/translation``     (M, 3) sample translation x, y, z in metres
(else ``entry_1/data_1/translation``)           (used as the probe position x, y, like Ptychodus)
``…/instrument_1/detector_1/distance``          sample–detector distance, m
``…/detector_1/x_pixel_size``, ``y_pixel_size`` detector pixel, m
``…/instrument_1/source_1/energy``              photon energy in **joules** (converted to eV)
``…/detector_1/mask``                           uint32 bit field, 0 = good pixel: any set bit but
                                                ``HAS_SIGNAL`` (0x1000) and ``INSIDE_SUPPORT``
                                                (0x10000) marks the pixel invalid
``entry_1/image_1/data``                        optional probe (Ptychodus writes
(else ``…/source_1/illumination``)              ``coherent:incoherent:y:x``); complex as stored, or a
                                                CXI compound of fields ``r``, ``i``
==============================================  ========================================================

Ptychodus 1.7 takes any non-zero mask value as bad; here, following the CXI specification, the two
bits that describe good pixels do not make a pixel invalid (``tests/test_import.py`` checks the
rest against Ptychodus' own CXI readers). The detector's ``basis_vectors`` are applied (axis flips
and transposes into ptycho's frame, rows +y and columns +x; anything else is refused) and the
sample's ``orientation`` is checked and recorded: :mod:`ptycho.io.importers.cxi_geometry`. Not
applied: the detector's ``corner_position`` (the zero frequency is found in the patterns) and any
sign convention of the translation beyond Ptychodus' (x → columns, y → rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.errors import DataError
from ptycho.io.atomic import one_line
from ptycho.io.importers.cxi_geometry import Orientation, OrientedPatterns, detector_orientation, sample_orientation
from ptycho.io.importers.record import ImportedScan, probe_modes_of

__all__ = ["CXI_NOT_DEFECTS", "read_cxi", "sniff_cxi"]

ELECTRON_VOLT_J = 1.602176634e-19
CXI_NOT_DEFECTS = 0x00001000 | 0x00010000
"""Mask bits that describe a good pixel (signal above background, inside the support)."""
DATA_PATHS = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data")
TRANSLATION_PATHS = ("entry_1/sample_1/geometry_1/translation", "entry_1/data_1/translation")
PROBE_PATHS = ("entry_1/image_1/data", "entry_1/instrument_1/source_1/illumination")
DETECTOR = "entry_1/instrument_1/detector_1"


def sniff_cxi(path: Any) -> bool:
    p = Path(path)
    if p.suffix.lower() not in (".cxi", ".h5", ".hdf5", ".nxs") or not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            return any(isinstance(f.get(key), h5py.Dataset) for key in DATA_PATHS)
    except (OSError, ValueError):
        return False


def _scalar(f: h5py.File, key: str, where: str) -> float | None:
    """A positive number at ``key`` (a per-frame array must hold one value), or None if absent."""
    if key not in f:
        return None
    values = np.unique(np.asarray(f[key][()], np.float64).ravel())
    if values.size != 1 or not np.isfinite(values[0]) or values[0] <= 0:
        raise DataError(f"{where}: '{key}' holds {values[:4]}; expected one positive number")
    return float(values[0])


def _complex(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.names and {"r", "i"} <= set(raw.dtype.names):
        return raw["r"] + 1j * raw["i"]
    return raw


def _valid_pixels(f: h5py.File, where: str, conversions: list[str],
                  orientation: Orientation | None) -> np.ndarray | None:
    key = f"{DETECTOR}/mask"
    if key not in f:
        return None
    bits = np.asarray(f[key][()])
    if bits.dtype.kind not in "iub":
        raise DataError(f"{where}: '{key}' has dtype {bits.dtype}; expected the CXI integer bit field")
    bad = (bits.astype(np.int64) & ~CXI_NOT_DEFECTS) != 0
    if bad.ndim == 3:  # one mask per frame: a pixel is valid only where every frame says so
        bad = bad.any(axis=0)
        conversions.append("per-frame CXI masks combined (a pixel bad in any frame is invalid)")
    conversions.append(f"CXI mask bit field → valid pixels ({int(bad.sum())} invalid)")
    return ~bad if orientation is None else orientation.apply(~bad)


def _orientation(f: h5py.File, where: str, conversions: list[str]) -> tuple[Orientation | None, dict[str, Any]]:
    """The detector's orientation (None: used as stored) and what the metadata record of it and
    of the sample's orientation."""
    geometry: dict[str, Any] = {}
    orientation = detector_orientation(f, where)
    if orientation is not None:
        conversions.append(orientation.describe())
        geometry["detector_orientation"] = orientation.record()
        orientation = None if orientation.identity else orientation
    sample = sample_orientation(f, where)
    if sample is not None:
        geometry["sample_orientation"] = sample
        conversions.append(f"CXI sample orientation: sample x along {sample['sample_x']}, y along {sample['sample_y']} "
                           "(recorded; the translations are lab-frame, the object is reconstructed in the lab frame)")
    return orientation, geometry


def _read_open(f: h5py.File, where: str) -> ImportedScan:
    data_key = next(k for k in DATA_PATHS if isinstance(f.get(k), h5py.Dataset))
    patterns = f[data_key]
    if patterns.ndim != 3 or patterns.dtype.kind not in "iuf":
        raise DataError(f"{where}: '{data_key}' is {patterns.shape} {patterns.dtype}; expected (M, n_y, n_x) counts")
    t_key = next((k for k in TRANSLATION_PATHS if k in f), None)
    if t_key is None:
        raise DataError(f"{where}: no probe positions: expected '{TRANSLATION_PATHS[0]}' (M, 3) in metres")
    translation = np.asarray(f[t_key][()], np.float64)
    if translation.ndim != 2 or translation.shape[1] < 2:
        raise DataError(f"{where}: '{t_key}' has shape {translation.shape}; expected (M, 3) x, y, z in metres")
    conversions = [f"positions from {t_key} (x, y in metres)"]
    orientation, geometry = _orientation(f, where, conversions)
    energy_j = _scalar(f, "entry_1/instrument_1/source_1/energy", where)
    if energy_j is not None:
        conversions.append("photon energy J → eV")
    width, height = (_scalar(f, f"{DETECTOR}/{a}_pixel_size", where) for a in ("x", "y"))
    if width is not None and height is not None and not np.isclose(width, height, rtol=1e-6):
        raise DataError(f"{where}: detector pixels are {width:g} × {height:g} m; ptycho needs square pixels")
    probe_key = next((k for k in PROBE_PATHS if isinstance(f.get(k), h5py.Dataset)), None)
    probe = None if probe_key is None else probe_modes_of(_complex(f[probe_key][()]), where, conversions)
    return ImportedScan(
        patterns=patterns if orientation is None else OrientedPatterns(patterns, orientation), format="cxi",
        dc=None, x_m=translation[:, 0].copy(), y_m=translation[:, 1].copy(),
        probe=probe, mask=_valid_pixels(f, where, conversions, orientation), metadata=geometry,
        photon_energy_eV=None if energy_j is None else energy_j / ELECTRON_VOLT_J,
        detector_distance_m=_scalar(f, f"{DETECTOR}/distance", where), detector_pixel_m=width or height,
        conversions=conversions, closer=f.close,
    )


def read_cxi(path: Any) -> ImportedScan:
    """Open a CXI file (module docstring); the patterns stay on disk until the scan is closed."""
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot open as HDF5/CXI ({one_line(exc)})") from None
    try:
        return _read_open(f, where)
    except BaseException as exc:
        f.close()
        if isinstance(exc, (OSError, KeyError, ValueError, TypeError)):
            raise DataError(f"{where}: cannot read the CXI file ({one_line(exc)})") from None
        raise
