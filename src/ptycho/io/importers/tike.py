"""The tike NPZ layout: the arrays ``tike.ptycho.reconstruct`` takes, saved with ``np.savez``.

=========  ======================  ===========================================================
key        shape                   meaning (tike's conventions)
=========  ======================  ===========================================================
``data``   (…, M, n, n)            intensities (photon counts), zero frequency at the array
                                   corner ``[0, 0]`` (tike propagates with an unshifted
                                   unitary FFT, as ptycho does, so the gauge is the same)
``scan``   (…, M, 2)               (row, column) of each probe window's *minimum corner* in
                                   object pixels: a window at ``s`` covers pixels ``s … s+n−1``
``probe``  (…, K, n, n)            incoherent modes in the last three axes (tike:
                                   ``(…, 1, 1, SHARED, n, n)``; pty-chi: ``(OPR, K, n, n)``)
``psi``    (D, H, W) or (H, W)     optional object (slices multiplied: projection approximation)
``mask``   (n, n)                  optional valid pixels (True = measured), corner layout
=========  ======================  ===========================================================

Conversion to docs/conventions.md#windows (pixel centres at integers, windows given by their centres): a window
whose first pixel is ``s`` has its centre at ``s + (n−1)/2``, so ``x = scan[:, 1] + (n−1)/2`` and
``y = scan[:, 0] + (n−1)/2``; tike's own docs put the centre at ``s + n/2`` in its
pixel-edge coordinates, the same point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.coercion import coerce_array, coerce_mask, reduce_leading
from ptycho.errors import DataError
from ptycho.io.importers.record import ImportedScan, file_keys, probe_modes_of

__all__ = ["TIKE_KEYS", "read_tike", "sniff_tike"]

TIKE_KEYS = {"data", "scan"}


def sniff_tike(path: Any) -> bool:
    p = Path(path)
    return p.suffix.lower() == ".npz" and TIKE_KEYS <= file_keys(p)


def _squeeze_leading(arr: np.ndarray, ndim: int, key: str, where: str) -> np.ndarray:
    """Drop singleton leading axes down to ``ndim`` dimensions (tike's ``…`` batch axes)."""
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise DataError(f"{where}: key '{key}' has shape {arr.shape}; expected {ndim}-D after dropping "
                        "singleton leading axes")
    return arr


def read_tike(path: Any) -> ImportedScan:
    """Read a tike-layout NPZ (module docstring) without converting anything but the positions."""
    from ptycho.io.npz import NpzReader

    with NpzReader(path) as npz:
        where = npz.where
        data = _squeeze_leading(npz.array("data", np.float32), 3, "data", where)
        scan = _squeeze_leading(npz.array("scan", np.float64), 2, "scan", where)
        if scan.shape[-1] != 2:
            raise DataError(f"{where}: key 'scan' has shape {scan.shape}; expected (M, 2) (row, column) corners")
        if len(scan) != len(data):
            raise DataError(f"{where}: inconsistent shapes: {len(data)} patterns in 'data' but {len(scan)} "
                            "positions in 'scan'; expected one (row, column) corner per pattern")
        conversions: list[str] = []
        probe = probe_modes_of(npz.array("probe"), where, conversions) if "probe" in npz else None
        psi = npz.optional("psi", np.complex64)
        mask = npz.optional("mask")
    n = data.shape[-1]
    half = (n - 1) / 2
    conversions.append(f"tike window corners (row, column) → centres: x = column + {half:g}, y = row + {half:g}")
    obj = None
    if psi is not None:
        obj = reduce_leading(psi, "psi", where, combine=True)
    return ImportedScan(
        patterns=data, format="tike-npz", dc="corner", x=scan[:, 1] + half, y=scan[:, 0] + half,
        probe=None if probe is None else coerce_array(probe, np.complex64, key="probe", where=where),
        object=obj, mask=None if mask is None else coerce_mask(mask, where=where), conversions=conversions,
    )
