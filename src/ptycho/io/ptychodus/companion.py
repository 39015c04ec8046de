"""The diffraction companion of a Ptychodus workflow directory (``diffraction.h5`` beside the
product): finding it, and pairing its patterns with a product's positions by scan index."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array
from ptycho.errors import DataError
from ptycho.io.atomic import one_line
from ptycho.io.ptychodus.product import DETECTOR_RTOL, DIFFRACTION_FILE, PtychodusProduct, detector_pixel_size_m

__all__ = ["find_diffraction_companion", "read_companion"]


def find_diffraction_companion(product_path: str | os.PathLike[str]) -> Path | None:
    """The workflow directory's ``diffraction.h5`` beside ``product_path``, if there is one."""
    candidate = Path(product_path).with_name(DIFFRACTION_FILE)
    return candidate if candidate.is_file() and candidate != Path(product_path) else None


def read_companion(product: PtychodusProduct, path: Path) -> PtychodusProduct:
    """Pair the companion's patterns with the product's positions by scan index."""
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot open the diffraction file as HDF5 ({one_line(exc)})") from None
    try:
        for key in ("patterns", "indexes"):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataError(f"{where}: missing key '{key}'; expected Ptychodus' diffraction layout "
                                "(patterns, indexes, bad_pixels)")
        patterns = f["patterns"]
        indexes = coerce_array(f["indexes"][()], np.int64, key="indexes", where=where)
        if patterns.ndim != 3 or patterns.dtype.kind not in "iuf" or indexes.shape != patterns.shape[:1]:
            raise DataError(f"{where}: patterns {patterns.shape} {patterns.dtype} and indexes {indexes.shape}; "
                            "expected (M, N, N) counts and (M,) indexes")
        if patterns.shape[1:] != product.probe.shape[-2:]:
            raise DataError(f"{where}: patterns are {patterns.shape[1]}×{patterns.shape[2]} but the product's probe "
                            f"is {product.N}×{product.N}; they must match")
        _warn_detector_geometry(product, patterns, where)
        bad = np.asarray(f["bad_pixels"][()], bool) if "bad_pixels" in f else np.zeros(patterns.shape[1:], bool)
        if bad.shape != patterns.shape[1:]:
            raise DataError(f"{where}: bad_pixels has shape {bad.shape}; expected {patterns.shape[1:]}")
        mask = ~bad if bad.any() else None  # ptycho keeps valid pixels; bad ones leave the loss
        if np.array_equal(indexes, product.indexes):
            return replace(product, diffraction=patterns, mask=mask, _closer=f.close)  # lazy: same order
        rows = _match_indexes(indexes, product.indexes, where)
        data = np.asarray(patterns[()], np.float32)[rows]
        f.close()
        return replace(product, diffraction=data, mask=mask)
    except BaseException:
        f.close()
        raise


def _match_indexes(pattern_indexes: np.ndarray, position_indexes: np.ndarray, where: str) -> np.ndarray:
    """Row of ``pattern_indexes`` holding each position's index (DataError if absent or ambiguous)."""
    if len(np.unique(pattern_indexes)) != len(pattern_indexes):
        raise DataError(f"{where}: key 'indexes' repeats scan indexes; each pattern needs its own")
    order = np.argsort(pattern_indexes)
    found = np.searchsorted(pattern_indexes, position_indexes, sorter=order)
    rows = order[np.minimum(found, len(order) - 1)]
    missing = pattern_indexes[rows] != position_indexes
    if missing.any():
        raise DataError(f"{where}: no pattern for {int(missing.sum())} of {len(position_indexes)} probe positions "
                        f"(first scan index {int(position_indexes[missing][0])}); the diffraction file and the "
                        "product do not belong together")
    if len(pattern_indexes) > len(position_indexes):
        warnings.warn(f"{where}: {len(pattern_indexes) - len(position_indexes)} patterns have no probe position "
                      "in the product and are ignored", UserWarning, stacklevel=4)
    return rows


def _warn_detector_geometry(product: PtychodusProduct, patterns: h5py.Dataset, where: str) -> None:
    width = patterns.attrs.get("detector_pixel_width_m")
    if width is None or not product.far_field or product.photon_energy_eV <= 0:
        return
    expected = detector_pixel_size_m(product.photon_energy_eV, product.detector_distance_m, product.N,
                                     product.probe_pixel_width_m)
    if not math.isclose(float(width), expected, rel_tol=DETECTOR_RTOL):
        warnings.warn(f"{where}: detector pixel {float(width):g} m, but λz/(N·dx) = {expected:g} m for the product's "
                      "energy, distance and probe pixel; the geometry is inconsistent", UserWarning, stacklevel=4)
