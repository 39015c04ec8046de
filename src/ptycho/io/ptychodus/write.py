"""Writing Ptychodus products (HDF5, NPZ) and the diffraction companion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.io.atomic import atomic_output
from ptycho.io.h5 import WRITE_CHUNK
from ptycho.io.npz import save_npz_arrays
from ptycho.io.ptychodus.product import (
    _NPZ_KEYS,
    PtychodusProduct,
    _check_for_writing,
    _dataset_attrs,
    _h5_contents,
    product_format,
)


def write_ptychodus_product(path: str | os.PathLike[str], product: PtychodusProduct, *,
                            format: str | None = None) -> Path:  # noqa: A002
    """Write ``product`` atomically as a Ptychodus HDF5 or NPZ product (module docstring).

    ``product.diffraction`` is not part of a product; see :func:`write_ptychodus_diffraction`.
    """
    fmt = product_format(path, format)
    _check_for_writing(product)
    attrs, arrays = _h5_contents(product)
    if fmt == "npz":
        flat = {key: np.asarray(value) for key, value in attrs.items()}
        flat.update(arrays)
        flat.update({_NPZ_KEYS[k]: np.asarray(float(v)) for k, v in _dataset_attrs(product).items()})
        return save_npz_arrays(path, flat)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        for (key, attr), value in _dataset_attrs(product).items():
            f[key].attrs[attr] = float(value)
    return Path(path)


def write_ptychodus_diffraction(path: str | os.PathLike[str], patterns: Any, indexes: Any,
                                detector_pixel_m: tuple[float, float], mask: Any = None) -> Path:
    """Write the diffraction companion (``load_diffraction_data`` layout), streamed and atomic.

    Parameters
    ----------
    patterns : (M, N, N) array-like
        Counts, DC-centred; sliced ``WRITE_CHUNK`` patterns at a time (an ``h5py.Dataset`` or a
        :class:`Dataset`'s ``read_patterns`` source works). Stored float32.
    indexes : (M,) int
        Scan index of each pattern (the product's ``probe_position_indexes``).
    detector_pixel_m : (width, height)
    mask : (N, N) bool, optional
        Valid pixels (ptycho's ``mask``); written inverted as ``bad_pixels``. Default: none bad.
    """
    shape = tuple(int(s) for s in patterns.shape)
    indexes = np.asarray(indexes, np.int64)
    if len(shape) != 3 or indexes.shape != shape[:1]:
        raise ValueError(f"patterns {shape} and indexes {indexes.shape} must be (M, N, N) and (M,)")
    M, h, w = shape
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("indexes", data=indexes)
        dset = f.create_dataset("patterns", shape, np.float32, chunks=(1, h, w) if M else None, compression="lzf")
        dset.attrs["detector_pixel_width_m"] = float(detector_pixel_m[0])
        dset.attrs["detector_pixel_height_m"] = float(detector_pixel_m[1])
        for start in range(0, M, WRITE_CHUNK):
            stop = min(start + WRITE_CHUNK, M)
            dset[start:stop] = np.asarray(patterns[start:stop], np.float32)
        bad = np.zeros((h, w), bool) if mask is None else ~np.asarray(mask, bool)
        f.create_dataset("bad_pixels", data=bad)
    return Path(path)


# --------------------------------------------------------------------------- reading
