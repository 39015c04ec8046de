"""Importers for the formats ptycho already reads: its own canonical files (to crop, bin or mask
them), the earlier PtychoPINN NPZ and Ptychodus products. Each reuses the reader in
:mod:`ptycho.io`; only the hand-over to an :class:`ImportedScan` is here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.io.importers.record import ImportedScan, file_keys

__all__ = ["read_canonical", "read_ptychodus", "read_ptychopinn", "sniff_canonical", "sniff_ptychodus",
           "sniff_ptychopinn"]

_CANONICAL_KEYS = {"diffraction", "x", "y", "probe"}
_PHYSICAL = {"photon_energy_eV": "photon_energy_eV", "detector_distance_m": "detector_distance_m",
             "detector_pixel_m": "detector_pixel_size_m"}


def sniff_canonical(path: Any) -> bool:
    from ptycho.io.ptychodus import is_ptychodus_product

    p = Path(path)
    return _CANONICAL_KEYS <= file_keys(p) and not is_ptychodus_product(p)


def sniff_ptychopinn(path: Any) -> bool:
    p = Path(path)
    keys = file_keys(p) if p.suffix.lower() == ".npz" else set()
    return {"xcoords", "ycoords", "probeGuess"} <= keys and bool(keys & {"diff3d", "diffraction"})


def sniff_ptychodus(path: Any) -> bool:
    from ptycho.io.ptychodus import PRODUCT_FILE, is_ptychodus_product

    p = Path(path)
    if p.is_dir():
        p = p / PRODUCT_FILE
    return p.is_file() and is_ptychodus_product(p)


def _from_dataset(ds: Dataset, fmt: str) -> ImportedScan:
    """A loaded (validated) dataset in ptycho's conventions: DC-centred, positions in pixels."""
    meta = dict(ds.metadata)
    physical = {field: meta.get(key) for field, key in _PHYSICAL.items()}
    probe = np.asarray(ds.probe_modes if ds.probe_modes is not None else ds.probe)
    probe = probe if probe.ndim == 3 else probe[None]  # a mixed state (K, N, N) keeps every mode
    return ImportedScan(
        patterns=ds.diffraction, format=fmt, dc="centre", x=np.asarray(ds.x), y=np.asarray(ds.y),
        probe=np.asarray(probe, np.complex64), probe_pixel_m=meta.get("pixel_size_m"), object=ds.object,
        mask=None if ds.mask is None else np.asarray(ds.mask, bool), scan_index=ds.scan_index, metadata=meta,
        conversions=[str(step) for step in meta.get("conversions", [])],  # a re-import keeps the history
        **{k: (None if v is None else float(v)) for k, v in physical.items()}, closer=ds.close,
    )


def read_canonical(path: Any) -> ImportedScan:
    from ptycho.io.datasets import load_dataset

    return _from_dataset(load_dataset(path), "ptycho")


def read_ptychopinn(path: Any) -> ImportedScan:
    from ptycho.io.legacy import read_ptychopinn_npz

    scan = _from_dataset(read_ptychopinn_npz(path), "ptychopinn-npz")
    scan.conversions.append("PtychoPINN amplitudes squared to counts")
    return scan


def read_ptychodus(path: Any) -> ImportedScan:
    from ptycho.io.ptychodus import PRODUCT_FILE, read_ptychodus_dataset

    p = Path(path)
    scan = _from_dataset(read_ptychodus_dataset(p / PRODUCT_FILE if p.is_dir() else p), "ptychodus")
    scan.conversions.append("Ptychodus positions (metres) mapped to object pixels by the product's own geometry")
    if scan.mask is not None:
        scan.conversions.append("Ptychodus bad_pixels inverted to the valid-pixel mask")
    return scan
