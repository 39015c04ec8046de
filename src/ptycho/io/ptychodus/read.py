"""Reading Ptychodus products back as ptycho datasets (their diffraction companion:
:mod:`ptycho.io.ptychodus.companion`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array, probe_modes_from, reduce_leading
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.io.atomic import one_line
from ptycho.io.h5 import H5_SUFFIXES
from ptycho.io.npz import NpzReader
from ptycho.io.ptychodus.companion import find_diffraction_companion, read_companion
from ptycho.io.ptychodus.product import (
    _MARKER_KEYS,
    _NPZ_KEYS,
    _SCALARS,
    DIFFRACTION_FILE,
    PtychodusProduct,
)


def is_ptychodus_product(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (HDF5 or NPZ) holds the keys of a Ptychodus product; never raises."""
    p = Path(path)
    try:
        if p.suffix.lower() in H5_SUFFIXES:
            with h5py.File(p, "r") as f:
                return _MARKER_KEYS <= set(f.keys())
        if p.suffix.lower() == ".npz":
            with NpzReader(p) as npz:
                return _MARKER_KEYS <= set(npz.keys)
    except (OSError, ValueError, DataError):
        return False
    return False


def _scalar(value: Any, key: str, where: str, *, kind: str = "float") -> Any:
    arr = np.asarray(value)
    if kind == "str":
        item = arr.reshape(-1)[0] if arr.size else ""
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: '{key}' must hold one number; found {value!r}")
    item = arr.reshape(-1)[0]
    if kind == "bool":
        return bool(item)
    if not np.isfinite(item):
        raise DataError(f"{where}: '{key}' is {item}; expected a finite number")
    return float(item)


class _Source:
    """Uniform access to an HDF5 or NPZ product: ``get(key)`` for arrays, ``attr(dataset, name)``."""

    def __init__(self, path: Path) -> None:
        self.where, self.npz = str(path), path.suffix.lower() == ".npz"
        self._h5: h5py.File | None = None
        self._reader: NpzReader | None = None
        if self.npz:
            self._reader = NpzReader(path)
        else:
            try:
                self._h5 = h5py.File(path, "r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot open as HDF5; corrupt or not HDF5 ({one_line(exc)})") from None

    def has(self, key: str) -> bool:
        return key in self._reader if self._reader else key in self._h5  # type: ignore[operator]

    def get(self, key: str, *, required: bool = True) -> Any:
        if not self.has(key):
            if required:
                raise DataError(f"{self.where}: missing key '{key}'; not a complete Ptychodus product")
            return None
        if self._reader:
            return self._reader.array(key)
        item = self._h5[key]  # type: ignore[index]
        if not isinstance(item, h5py.Dataset):
            raise DataError(f"{self.where}: key '{key}' is an HDF5 group; expected a dataset")
        return item[()]

    def meta(self, key: str, *, required: bool = False) -> Any:
        """A root attribute (HDF5) or a flat scalar key (NPZ)."""
        if self._reader:
            return self.get(key, required=required)
        if key not in self._h5.attrs:  # type: ignore[union-attr]
            if required:
                raise DataError(f"{self.where}: missing attribute '{key}'; not a complete Ptychodus product")
            return None
        return self._h5.attrs[key]  # type: ignore[union-attr]

    def attr(self, dataset: str, name: str, *, default: Any = None) -> Any:
        if self._reader:
            value = self.get(_NPZ_KEYS[(dataset, name)], required=default is None)
        else:
            attrs = self._h5[dataset].attrs  # type: ignore[index]
            if name not in attrs and default is None:
                raise DataError(f"{self.where}: key '{dataset}' lacks attribute '{name}'")
            value = attrs.get(name)
        return default if value is None else _scalar(value, f"{dataset}.{name}", self.where)

    def close(self) -> None:
        if self._reader:
            self._reader.close()
        if self._h5 is not None:
            self._h5.close()


def _optional(src: _Source, key: str, default: Any, *, kind: str = "float") -> Any:
    """An optional metadata value, with Ptychodus' own default when absent."""
    value = src.meta(key)
    return default if value is None else _scalar(value, key, src.where, kind=kind)


def _read_product(src: _Source) -> PtychodusProduct:
    where = src.where
    energy = src.meta("photon_energy_eV")
    if energy is None:
        energy = src.meta("probe_energy_eV")
    if energy is None:
        raise DataError(f"{where}: missing photon_energy_eV (and the legacy probe_energy_eV); "
                        "not a complete Ptychodus product")
    obj = coerce_array(src.get("object"), np.complex64, key="object", where=where)
    probe = coerce_array(src.get("probe"), np.complex64, key="probe", where=where)
    if obj.ndim not in (2, 3) or probe.ndim not in (2, 3, 4):
        raise DataError(f"{where}: object {obj.shape} / probe {probe.shape}; expected (L, H, W) and (C, K, N, N)")
    obj = reduce_leading(obj, "object", where, combine=True)
    probe = probe_modes_from(probe, "probe", where)  # (C, K, N, N): the first coherent entry, every mode
    if probe.shape[-1] != probe.shape[-2] or obj.size == 0:
        raise DataError(f"{where}: key 'probe' is {probe.shape[-2]}×{probe.shape[-1]}; expected a square probe "
                        "and a non-empty object")
    x_m = coerce_array(src.get("probe_position_x_m"), np.float64, key="probe_position_x_m", where=where)
    y_m = coerce_array(src.get("probe_position_y_m"), np.float64, key="probe_position_y_m", where=where)
    indexes = coerce_array(src.get("probe_position_indexes"), np.int64, key="probe_position_indexes", where=where)
    if not (x_m.ndim == 1 and x_m.shape == y_m.shape == indexes.shape):
        raise DataError(f"{where}: probe_position_x_m {x_m.shape}, _y_m {y_m.shape} and indexes {indexes.shape} "
                        "must be one (M,) length")
    for key, arr in (("object", obj), ("probe", probe), ("probe_position_x_m", x_m), ("probe_position_y_m", y_m)):
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: key '{key}' contains NaN or Inf values; expected finite numbers")
    dx, dy = src.attr("object", "pixel_width_m"), src.attr("object", "pixel_height_m")
    if dx <= 0 or dy <= 0:
        raise DataError(f"{where}: object pixel size {dx:g} × {dy:g} m; expected positive values")
    cx, cy = src.attr("object", "center_x_m"), src.attr("object", "center_y_m")
    H, W = obj.shape
    values = src.get("loss_values", required=False)
    if values is None and src.npz:
        values = src.get("costs", required=False)  # archives written before the rename
    values = np.zeros(0) if values is None else coerce_array(values, np.float64, key="loss_values", where=where)
    epochs = src.get("loss_epochs", required=False)
    epochs = np.arange(len(values)) if epochs is None else coerce_array(epochs, np.int64, key="loss_epochs", where=where)
    return PtychodusProduct(
        object=np.ascontiguousarray(obj), probe=np.ascontiguousarray(probe),
        x=(x_m - cx) / dx + (W - 1) / 2, y=(y_m - cy) / dy + (H - 1) / 2, indexes=indexes,
        pixel_width_m=dx, pixel_height_m=dy,
        probe_pixel_width_m=src.attr("probe", "pixel_width_m", default=dx),
        probe_pixel_height_m=src.attr("probe", "pixel_height_m", default=dy),
        center_x_m=cx, center_y_m=cy, photon_energy_eV=_scalar(energy, "photon_energy_eV", where),
        detector_distance_m=_scalar(src.meta("detector_object_distance_m", required=True),
                                    "detector_object_distance_m", where),
        name=_optional(src, "name", "Unnamed", kind="str"), comments=_optional(src, "comments", "", kind="str"),
        **{key: _optional(src, key, 0.0) for key in _SCALARS}, far_field=_optional(src, "far_field", True, kind="bool"),
        loss_epochs=epochs[: len(values)], loss_values=values[: len(epochs)], source=where,
    )


def read_ptychodus_product(path: str | os.PathLike[str],
                           diffraction: str | os.PathLike[str] | None = None) -> PtychodusProduct:
    """Read a Ptychodus product (HDF5 or NPZ), optionally with its diffraction companion.

    Parameters
    ----------
    path : path-like
    diffraction : path-like, optional
        A Ptychodus diffraction file (workflow ``diffraction.h5`` layout). Its patterns are
        matched to the positions by scan index; its bad pixels become the dataset's ``mask``
        (valid = not bad). When the indexes already match the patterns stay on disk (close with
        ``to_dataset().close()``).

    Returns
    -------
    PtychodusProduct
        Positions in pixels of the returned object (Ptychodus' own mapping).

    Raises
    ------
    DataError
        Missing file or key, unreadable file, NaN, shape mismatches, patterns that do not pair.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: {'is a directory, expected a file' if p.exists() else 'file not found'}")
    src = _Source(p)
    try:
        product = _read_product(src)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the Ptychodus product; corrupt file ({one_line(exc)})") from None
    finally:
        src.close()
    if diffraction is None:
        return product
    d = Path(diffraction)
    if not d.is_file():
        raise DataError(f"{diffraction}: diffraction file not found")
    return read_companion(product, d)


def read_ptychodus_dataset(path: str | os.PathLike[str],
                           diffraction: str | os.PathLike[str] | None = None) -> Dataset:
    """A Ptychodus product plus its diffraction (``diffraction`` or ``diffraction.h5`` beside it)
    as a canonical :class:`Dataset`; DataError saying how to provide the patterns if there are none."""
    companion = Path(diffraction) if diffraction is not None else find_diffraction_companion(path)
    if companion is None:
        raise DataError(f"{path}: a Ptychodus product holds no diffraction patterns and no {DIFFRACTION_FILE} lies "
                        f"beside it; put the workflow's {DIFFRACTION_FILE} in the same folder (or export with "
                        "`export.with_diffraction`)")
    product = read_ptychodus_product(path, companion)
    try:
        return product.to_dataset()
    except BaseException:
        if product._closer is not None:
            product._closer()
        raise
