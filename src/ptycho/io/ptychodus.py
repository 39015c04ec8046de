"""Ptychodus product files and the diffraction companion of a Ptychodus workflow directory (SPEC §10).

Written to match what Ptychodus 1.7.0 itself writes (``ptychodus.api.io.save_product``,
``ptychodus.plugins.npz_product_file.NPZProductFileIO.write``) and reads (``load_product``,
``NPZProductFileIO.read``, ``load_diffraction_data``).

**HDF5 product** (``.h5``/``.hdf5``)::

    attrs   name, comments (str); detector_object_distance_m, photon_energy_eV, probe_energy_eV
            (the pre-rename spelling, for older readers), probe_photon_count, exposure_time_s,
            mass_attenuation_m2_per_kg, tomography_angle_deg, focus_object_distance_m (0),
            tilt_angle_deg (0) (float); far_field (bool, True)
    probe_position_indexes (M,)          int64    scan index of each position (0 … M−1)
    probe_position_x_m/_y_m (M,)         float64  probe centres, metres, world frame
    probe                  (1, 1, N, N)  complex64  √counts; attrs pixel_width_m, pixel_height_m
    object                 (1, H, W)     complex64  attrs pixel_width_m, pixel_height_m,
                                                    center_x_m, center_y_m
    object_layer_spacing_m (0,)          float64  (one layer)
    loss_epochs (K,) int64, loss_values (K,) float64

**NPZ product**: the same values as flat keys; the attributes become ``probe_pixel_width_m``,
``probe_pixel_height_m``, ``object_pixel_width_m``, ``object_pixel_height_m``,
``object_center_x_m``, ``object_center_y_m`` (Ptychodus' NPZ spelling); strings are 0-d
unicode arrays, so no pickle is needed to read it.

**Positions.** Ptychodus maps metres to object-array pixels as
``x_px = (x_m − center_x_m)/dx + (W−1)/2`` (``ObjectGeometry.map_probe_positions_to_object_x_px``):
pixel centres at integers and the object centre at ``(W−1)/2`` — the SPEC §2 convention — so
``x_m = center_x_m + dx·(x_px − (W−1)/2)`` with ``x_px`` relative to the object array is exact.

**Gauge.** Ptychodus normalises a probe to ``Σ|P|² = probe_photon_count`` and propagates with a
unitary far-field transform, as ptycho does: the probe is exported and imported unchanged.

**Diffraction companion** (``diffraction.h5``, Ptychodus' ``StandardFileLayout.DIFFRACTION``)::

    patterns    (M, N, N) counts, DC-centred; attrs detector_pixel_width_m, detector_pixel_height_m
    indexes     (M,)      int64, matched to probe_position_indexes
    bad_pixels  (N, N)    bool
    probe_photon_counts (M,) optional

A folder holding ``product.h5`` and ``diffraction.h5`` is a Ptychodus workflow directory (what
``ptychodus`` batch mode and its reconstruct CLIs open; ``settings.ini`` is optional there).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.data.validation import coerce_array
from ptycho.errors import ConfigError, DataError
from ptycho.io.atomic import atomic_output, one_line
from ptycho.io.npz import NpzReader, save_npz_arrays

__all__ = [
    "DIFFRACTION_FILE", "PRODUCT_FILE", "PRODUCT_FORMATS", "PtychodusProduct", "detector_pixel_size_m",
    "find_diffraction_companion", "is_ptychodus_product", "product_format", "read_ptychodus_dataset",
    "read_ptychodus_product", "world_center_m", "write_ptychodus_diffraction", "write_ptychodus_product",
]

DIFFRACTION_FILE = "diffraction.h5"
PRODUCT_FILE = "product.h5"
PRODUCT_FORMATS = ("h5", "npz")
H5_SUFFIXES = (".h5", ".hdf5")
HC_EV_M = 6.62607015e-34 * 299792458 / 1.602176634e-19
"""Planck constant × speed of light / elementary charge (eV·m), the exact SI values Ptychodus uses."""
PIXEL_RTOL = 1e-6
"""Relative tolerance for 'the same pixel size' (probe vs object sampling)."""
DETECTOR_RTOL = 1e-3
"""Relative disagreement between the detector pixel and λz/(N·dx) that earns a warning on import."""
WRITE_CHUNK = 1024
"""Patterns copied at a time into the diffraction companion."""

_NPZ_KEYS = {  # Ptychodus' flat spelling of the per-dataset HDF5 attributes
    ("probe", "pixel_width_m"): "probe_pixel_width_m", ("probe", "pixel_height_m"): "probe_pixel_height_m",
    ("object", "pixel_width_m"): "object_pixel_width_m", ("object", "pixel_height_m"): "object_pixel_height_m",
    ("object", "center_x_m"): "object_center_x_m", ("object", "center_y_m"): "object_center_y_m",
}
_SCALARS = ("probe_photon_count", "exposure_time_s", "mass_attenuation_m2_per_kg", "tomography_angle_deg",
            "focus_object_distance_m", "tilt_angle_deg")
_MARKER_KEYS = {"probe_position_x_m", "probe_position_y_m", "probe", "object"}


@dataclass(frozen=True, eq=False)
class PtychodusProduct:
    """A Ptychodus product in ptycho's terms (Dataset-like: ``probe``, ``x``, ``y``, ``object``).

    Attributes
    ----------
    object : (H, W) complex64
        The object (first layer, or the product of the layers of a multislice object).
    probe : (N, N) complex64
        √counts; the first mode of a multi-mode probe.
    x, y : (M,) float64
        Probe centres in pixels of ``object`` (SPEC §2).
    indexes : (M,) int64
        Ptychodus scan index of each position (pairs positions with patterns).
    pixel_width_m, pixel_height_m : float
        Object pixel size.
    probe_pixel_width_m, probe_pixel_height_m : float
    center_x_m, center_y_m : float
        World position of the object array's centre.
    photon_energy_eV, detector_distance_m, probe_photon_count, exposure_time_s, … : float
        Product metadata, Ptychodus' names and units.
    loss_epochs : (K,) int64 ; loss_values : (K,) float64
    diffraction : (M, N, N) array-like or None
        Counts of each position, when a diffraction companion was read.
    """

    object: np.ndarray
    probe: np.ndarray
    x: np.ndarray
    y: np.ndarray
    indexes: np.ndarray
    pixel_width_m: float
    pixel_height_m: float
    probe_pixel_width_m: float
    probe_pixel_height_m: float
    center_x_m: float
    center_y_m: float
    photon_energy_eV: float
    detector_distance_m: float
    name: str = "Unnamed"
    comments: str = ""
    probe_photon_count: float = 0.0
    exposure_time_s: float = 0.0
    mass_attenuation_m2_per_kg: float = 0.0
    tomography_angle_deg: float = 0.0
    focus_object_distance_m: float = 0.0
    tilt_angle_deg: float = 0.0
    far_field: bool = True
    loss_epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loss_values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    diffraction: Any = None
    source: str | None = None
    _closer: Any = field(default=None, repr=False)

    @property
    def N(self) -> int:
        return int(self.probe.shape[-1])

    def positions_m(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_m, y_m)``: ``center + d·(x_px − (W−1)/2)``, the inverse of Ptychodus' mapping."""
        H, W = self.object.shape
        x_m = self.center_x_m + self.pixel_width_m * (self.x - (W - 1) / 2)
        y_m = self.center_y_m + self.pixel_height_m * (self.y - (H - 1) / 2)
        return x_m, y_m

    @property
    def metadata(self) -> dict[str, Any]:
        """Physical metadata in ptycho's names (``pixel_size_m`` only for square object pixels)."""
        meta: dict[str, Any] = {
            "source_format": "ptychodus-product", "name": self.name, "comments": self.comments,
            "photon_energy_eV": self.photon_energy_eV, "detector_distance_m": self.detector_distance_m,
            "pixel_width_m": self.pixel_width_m, "pixel_height_m": self.pixel_height_m,
            "probe_pixel_width_m": self.probe_pixel_width_m, "probe_pixel_height_m": self.probe_pixel_height_m,
            "object_center_x_m": self.center_x_m, "object_center_y_m": self.center_y_m,
            **{key: getattr(self, key) for key in _SCALARS}, "far_field": self.far_field,
        }
        if math.isclose(self.pixel_width_m, self.pixel_height_m, rel_tol=PIXEL_RTOL):
            meta["pixel_size_m"] = self.pixel_width_m
        return meta

    def to_dataset(self) -> Dataset:
        """The canonical :class:`Dataset` (needs ``diffraction``; probe sampled like the object).

        Raises
        ------
        DataError
            No diffraction, or a probe pixel size different from the object's.
        """
        where = self.source or "Ptychodus product"
        if self.diffraction is None:
            raise DataError(f"{where}: a Ptychodus product holds no diffraction patterns; put the workflow's "
                            f"{DIFFRACTION_FILE} beside it (or export with `ptycho export-ptychodus --with-diffraction`)")
        for axis in ("width", "height"):
            probe_d, obj_d = getattr(self, f"probe_pixel_{axis}_m"), getattr(self, f"pixel_{axis}_m")
            if not math.isclose(probe_d, obj_d, rel_tol=PIXEL_RTOL):
                raise DataError(f"{where}: probe pixel {axis} {probe_d:g} m differs from the object's {obj_d:g} m; "
                                "ptycho needs both sampled alike (resample the probe in Ptychodus)")
        return Dataset(diffraction=self.diffraction, x=self.x, y=self.y, probe=self.probe, object=self.object,
                       metadata=self.metadata, source=self.source, _closer=self._closer)


def world_center_m(origin_px: float, size_px: int, pixel_m: float) -> float:
    """Object-array centre in metres when global object pixel 0 is the world origin.

    With this centre ``x_m = dx · x_global``: the metres of a position do not depend on which
    crop of the object is exported.
    """
    return pixel_m * (origin_px + (size_px - 1) / 2)


def detector_pixel_size_m(photon_energy_eV: float, distance_m: float, N: int, probe_pixel_m: float) -> float:
    """Detector pixel of the far-field geometry: ``λ z / (N · dx)`` (Ptychodus' Fraunhofer relation)."""
    return (HC_EV_M / photon_energy_eV) * distance_m / (N * probe_pixel_m)


def product_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``"h5"`` or ``"npz"``: ``fmt`` checked against the suffix, or chosen from it (ConfigError)."""
    suffix = Path(path).suffix.lower()
    by_suffix = "h5" if suffix in H5_SUFFIXES else "npz" if suffix == ".npz" else None
    if fmt is None:
        if by_suffix is None:
            raise ConfigError(f"{path}: cannot tell the product format from suffix {suffix or '(none)'}; "
                              "use .h5, .hdf5 or .npz")
        return by_suffix
    if fmt not in PRODUCT_FORMATS:
        raise ConfigError(f"unknown product format {fmt!r}; expected h5 or npz")
    if by_suffix != fmt:
        raise ConfigError(f"{path}: format {fmt!r} needs a file name ending in "
                          f"{'.h5 or .hdf5' if fmt == 'h5' else '.npz'}")
    return fmt


# --------------------------------------------------------------------------- writing


def _check_for_writing(p: PtychodusProduct) -> None:
    obj, probe = np.asarray(p.object), np.asarray(p.probe)
    if obj.ndim != 2 or probe.ndim != 2 or probe.shape[0] != probe.shape[1]:
        raise ValueError(f"need an (H, W) object and a square (N, N) probe; got {obj.shape} and {probe.shape}")
    M = len(p.x)
    if np.shape(p.y) != (M,) or np.shape(p.indexes) != (M,) or np.shape(p.loss_epochs) != np.shape(p.loss_values):
        raise ValueError("x, y, indexes must be (M,) and loss_epochs, loss_values of one length")


def _h5_contents(p: PtychodusProduct) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    attrs: dict[str, Any] = {
        "name": p.name, "comments": p.comments, "detector_object_distance_m": float(p.detector_distance_m),
        "photon_energy_eV": float(p.photon_energy_eV), "probe_energy_eV": float(p.photon_energy_eV),
        **{key: float(getattr(p, key)) for key in _SCALARS}, "far_field": bool(p.far_field),
    }
    x_m, y_m = p.positions_m()
    arrays = {
        "probe_position_indexes": np.asarray(p.indexes, np.int64),
        "probe_position_x_m": np.asarray(x_m, np.float64), "probe_position_y_m": np.asarray(y_m, np.float64),
        "probe": np.asarray(p.probe, np.complex64)[None, None],
        "object": np.asarray(p.object, np.complex64)[None],
        "object_layer_spacing_m": np.zeros(0, np.float64),
        "loss_epochs": np.asarray(p.loss_epochs, np.int64), "loss_values": np.asarray(p.loss_values, np.float64),
    }
    return attrs, arrays


def _dataset_attrs(p: PtychodusProduct) -> dict[tuple[str, str], float]:
    return {
        ("probe", "pixel_width_m"): p.probe_pixel_width_m, ("probe", "pixel_height_m"): p.probe_pixel_height_m,
        ("object", "pixel_width_m"): p.pixel_width_m, ("object", "pixel_height_m"): p.pixel_height_m,
        ("object", "center_x_m"): p.center_x_m, ("object", "center_y_m"): p.center_y_m,
    }


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
                                detector_pixel_m: tuple[float, float]) -> Path:
    """Write the diffraction companion (``load_diffraction_data`` layout), streamed and atomic.

    Parameters
    ----------
    patterns : (M, N, N) array-like
        Counts, DC-centred; sliced ``WRITE_CHUNK`` patterns at a time (an ``h5py.Dataset`` or a
        :class:`Dataset`'s ``read_patterns`` source works). Stored float32.
    indexes : (M,) int
        Scan index of each pattern (the product's ``probe_position_indexes``).
    detector_pixel_m : (width, height)
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
        f.create_dataset("bad_pixels", data=np.zeros((h, w), bool))
    return Path(path)


# --------------------------------------------------------------------------- reading


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


def find_diffraction_companion(product_path: str | os.PathLike[str]) -> Path | None:
    """The workflow directory's ``diffraction.h5`` beside ``product_path``, if there is one."""
    candidate = Path(product_path).with_name(DIFFRACTION_FILE)
    return candidate if candidate.is_file() and candidate != Path(product_path) else None


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


def _squeeze_leading(arr: np.ndarray, key: str, where: str, *, combine: bool = False) -> np.ndarray:
    """``(…, h, w)`` → ``(h, w)``: the first mode of a probe, or the layers' product of an object."""
    if arr.ndim > 2 and int(np.prod(arr.shape[:-2])) > 1:
        what = "the product of its layers (projection approximation)" if combine else "the first mode"
        warnings.warn(f"{where}: '{key}' has shape {arr.shape}; using {what}", UserWarning, stacklevel=4)
        flat = arr.reshape(-1, *arr.shape[-2:])
        return np.prod(flat, axis=0).astype(np.complex64) if combine else flat[0]
    return arr.reshape(arr.shape[-2:]) if arr.ndim >= 2 else arr


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
    obj = _squeeze_leading(obj, "object", where, combine=True)
    probe = _squeeze_leading(probe, "probe", where)
    if probe.shape[0] != probe.shape[1] or obj.size == 0:
        raise DataError(f"{where}: key 'probe' is {probe.shape[0]}×{probe.shape[1]}; expected a square probe "
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


def _read_companion(product: PtychodusProduct, path: Path) -> PtychodusProduct:
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
        if patterns.shape[1:] != product.probe.shape:
            raise DataError(f"{where}: patterns are {patterns.shape[1]}×{patterns.shape[2]} but the product's probe "
                            f"is {product.N}×{product.N}; they must match")
        _warn_detector_geometry(product, patterns, where)
        bad = np.asarray(f["bad_pixels"][()], bool) if "bad_pixels" in f else np.zeros(patterns.shape[1:], bool)
        if np.array_equal(indexes, product.indexes) and not bad.any():
            return replace(product, diffraction=patterns, _closer=f.close)  # lazy: same order, nothing to mask
        rows = _match_indexes(indexes, product.indexes, where)
        data = np.asarray(patterns[()], np.float32)[rows]
        if bad.any():
            warnings.warn(f"{where}: {int(bad.sum())} bad pixels set to 0 counts (ptycho has no detector mask)",
                          UserWarning, stacklevel=3)
            data[:, bad] = 0
        f.close()
        return replace(product, diffraction=data)
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


def read_ptychodus_product(path: str | os.PathLike[str],
                           diffraction: str | os.PathLike[str] | None = None) -> PtychodusProduct:
    """Read a Ptychodus product (HDF5 or NPZ), optionally with its diffraction companion.

    Parameters
    ----------
    path : path-like
    diffraction : path-like, optional
        A Ptychodus diffraction file (workflow ``diffraction.h5`` layout). Its patterns are
        matched to the positions by scan index; bad pixels are set to 0 with a warning. When the
        indexes already match and nothing is masked the patterns stay on disk (close with
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
    return _read_companion(product, d)


def read_ptychodus_dataset(path: str | os.PathLike[str],
                           diffraction: str | os.PathLike[str] | None = None) -> Dataset:
    """A Ptychodus product plus its diffraction (``diffraction`` or ``diffraction.h5`` beside it)
    as a canonical :class:`Dataset`; DataError saying how to provide the patterns if there are none."""
    companion = Path(diffraction) if diffraction is not None else find_diffraction_companion(path)
    if companion is None:
        raise DataError(f"{path}: a Ptychodus product holds no diffraction patterns and no {DIFFRACTION_FILE} lies "
                        f"beside it; put the workflow's {DIFFRACTION_FILE} in the same folder (or export with "
                        "`ptycho export-ptychodus --with-diffraction`)")
    product = read_ptychodus_product(path, companion)
    try:
        return product.to_dataset()
    except BaseException:
        if product._closer is not None:
            product._closer()
        raise
