"""pty-chi's own NPZ layout: the arrays its example scripts load and hand to ``ptychi.api``.

=========================  =================  ==================================================
key                        shape              meaning (pty-chi's conventions)
=========================  =================  ==================================================
``data``                   (M, n, n)          intensities as collected (``DataOptions.data``: not
                                              FFT-shifted, not square-rooted), so the zero
                                              frequency is at the centre
``positions_px``           (M, 2)             probe centres in object pixels, **(y, x)** order,
                                              relative to an origin (below)
``probe``                  (…, K, n, n)       pty-chi ``(n_opr, K, n, n)``: incoherent modes in
                                              the last three axes, OPR mode 0 the main probe
``pixel_size_m``           ()                 optional object pixel (``ObjectOptions.pixel_size_m``)
``object``                 (D, H, W)/(H, W)   optional object (slices multiplied)
``valid_pixel_mask``       (n, n)             optional valid pixels (True = measured)
``wavelength_m``           ()                 optional wavelength (→ photon energy ``hc/λ``)
``detector_pixel_size_m``  ()                 optional detector pixel
``free_space_propagation_  ()                 optional sample–detector distance (``inf``: far
distance_m``                                  field, no distance known)
=========================  =================  ==================================================

Origin of the positions: pty-chi puts position ``(0, 0)`` at object-buffer coordinate
``round(H/2) + 0.5, round(W/2) + 0.5`` (``ObjectPosOriginCoordsMethods.SUPPORT``, its default) in
a frame whose pixel centres are integers, as ours are (a window centred at ``c`` starts at pixel
``c − (n−1)/2``). With an ``object`` that rule places the positions on it: ``x = x_px + round(W/2) + 0.5``.
Without one the origin is arbitrary, and the positions are shifted so the first window starts at
pixel 0; either shift is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.coercion import coerce_array, coerce_mask, reduce_leading
from ptycho.errors import DataError
from ptycho.io.importers.record import ImportedScan, file_keys, probe_modes_of
from ptycho.io.ptychodus.product import HC_EV_M

__all__ = ["PTYCHI_KEYS", "ptychi_origin", "read_ptychi", "sniff_ptychi"]

PTYCHI_KEYS = {"data", "positions_px"}


def sniff_ptychi(path: Any) -> bool:
    p = Path(path)
    return p.suffix.lower() == ".npz" and PTYCHI_KEYS <= file_keys(p)


def ptychi_origin(shape: tuple[int, ...]) -> tuple[float, float]:
    """Object-buffer ``(y, x)`` of pty-chi's position origin for an ``(…, H, W)`` object."""
    H, W = shape[-2:]
    return float(np.round(H / 2) + 0.5), float(np.round(W / 2) + 0.5)


def _scalar(npz: Any, key: str) -> float | None:
    """A positive number at ``key``, None when absent or ``inf`` (pty-chi's far-field distance)."""
    value = npz.optional(key, np.float64)
    if value is None:
        return None
    if np.size(value) != 1:
        raise DataError(f"{npz.where}: key '{key}' has shape {np.shape(value)}; expected one number")
    value = float(np.ravel(value)[0])
    if value == np.inf:
        return None
    if not np.isfinite(value) or value <= 0:
        raise DataError(f"{npz.where}: key '{key}' = {value:g}; expected a positive number")
    return value


def read_ptychi(path: Any) -> ImportedScan:
    """Read a pty-chi-layout NPZ (module docstring); only the positions are converted here."""
    from ptycho.io.npz import NpzReader

    with NpzReader(path) as npz:
        where = npz.where
        data = npz.array("data", np.float32)
        positions = npz.array("positions_px", np.float64)
        if data.ndim != 3 or len(data) == 0:
            raise DataError(f"{where}: key 'data' has shape {data.shape}; expected (M, n, n) intensities, M ≥ 1")
        if positions.ndim != 2 or positions.shape[1] != 2 or len(positions) != len(data):
            raise DataError(f"{where}: inconsistent shapes: {len(data)} patterns in 'data' but 'positions_px' has "
                            f"shape {positions.shape}; expected ({len(data)}, 2) (y, x) pixels")
        conversions: list[str] = []
        probe = probe_modes_of(npz.array("probe"), where, conversions) if "probe" in npz else None
        obj = npz.optional("object", np.complex64)
        mask = npz.optional("valid_pixel_mask")
        wavelength = _scalar(npz, "wavelength_m")
        physical = {"probe_pixel_m": _scalar(npz, "pixel_size_m"),
                    "detector_pixel_m": _scalar(npz, "detector_pixel_size_m"),
                    "detector_distance_m": _scalar(npz, "free_space_propagation_distance_m"),
                    "photon_energy_eV": None if wavelength is None else HC_EV_M / wavelength}
    if obj is not None:
        oy, ox = ptychi_origin(obj.shape)
        conversions.append(f"pty-chi positions (y, x) relative to its object origin → object pixels: x = x_px + {ox:g}, "
                           f"y = y_px + {oy:g} (round(size/2) + 0.5)")
        obj = reduce_leading(obj, "object", where, combine=True)
    else:
        half = (data.shape[-1] - 1) / 2
        oy, ox = half - float(positions[:, 0].min()), half - float(positions[:, 1].min())
        conversions.append(f"pty-chi positions (y, x), arbitrary origin, no object → shifted by x {ox:+g}, y {oy:+g} "
                           "so the first window starts at pixel 0")
    if wavelength is not None:
        conversions.append("wavelength m → photon energy eV (hc/λ)")
    return ImportedScan(
        patterns=data, format="ptychi-npz", dc="centre", x=positions[:, 1] + ox, y=positions[:, 0] + oy,
        probe=None if probe is None else coerce_array(probe, np.complex64, key="probe", where=where), object=obj,
        mask=None if mask is None else coerce_mask(mask, where=where), conversions=conversions,
        metadata={"ptychi_position_origin_px": {"x": ox, "y": oy}}, **physical,
    )
