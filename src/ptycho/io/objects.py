"""Object files (written by ``stitch``, read by ``evaluate`` and ``export-ptychodus``), docs/formats.md#object-files.

**Object file** (``.npz`` or ``.h5``/``.hdf5``)::

    object            (H, W) complex64  the stitched object
    support           (H, W) bool       pixels covered by at least one crop
    origin_x/origin_y ()     float64    global object-pixel coordinate of canvas pixel (0, 0):
                                        canvas pixel (r, c) is global pixel (origin_y + r, origin_x + c)
    metadata          JSON object string (NPZ: 0-d unicode array; HDF5: string dataset)
    positions_index   (P,)   int64      optional: dataset patterns whose positions were refined …
    positions_x/_y    (P,)   float64    … and those positions (global object pixels), the ones the
                                        object was reconstructed with (docs/positions.md#outputs)
    HDF5 attrs: format = "ptycho-object", format_version = 1
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array
from ptycho.errors import ConfigError, DataError
from ptycho.io.atomic import (
    atomic_output,
    one_line,
    parse_json_metadata,
    to_json,
)
from ptycho.io.h5 import H5_SUFFIXES
from ptycho.io.npz import NpzReader, read_metadata_array, save_npz_arrays

__all__ = [
    "OBJECT_FORMAT", "ObjectImage", "ScanPositions", "object_format", "read_object", "read_truth", "write_object",
]

OBJECT_FORMAT = "ptycho-object"
FORMAT_VERSION = 1
_OBJECT_KEYS = ("object", "objectGuess")  # canonical first, then the PtychoPINN name
_DATASET_KEYS = ("diffraction", "diff3d")
_POSITION_KEYS = ("positions_index", "positions_x", "positions_y")


@dataclass(frozen=True, eq=False)
class ScanPositions:
    """Probe positions of some dataset patterns (refined ones, written with an object).

    Attributes
    ----------
    index : (P,) int64
        Dataset pattern of each position.
    x, y : (P,) float64
        Probe centres, global object pixels.
    """

    index: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        n = np.shape(self.index)
        if len(n) != 1 or np.shape(self.x) != n or np.shape(self.y) != n:
            raise ValueError(f"positions index {np.shape(self.index)}, x {np.shape(self.x)}, y {np.shape(self.y)} "
                             "must be one (P,) length")

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of a whole scan with these positions in place of their patterns' (copies)."""
        x, y = np.array(x, np.float64), np.array(y, np.float64)
        x[self.index], y[self.index] = self.x, self.y
        return x, y


@dataclass(frozen=True, eq=False)
class ObjectImage:
    """A complex object on a canvas placed in global object-pixel coordinates.

    Attributes
    ----------
    object : (H, W) complex64
    support : (H, W) bool
        Pixels holding data; elsewhere ``object`` is 0.
    origin_x, origin_y : float
        Global coordinate of canvas pixel ``(0, 0)``.
    metadata : dict
    positions : ScanPositions or None
        Refined positions the object was reconstructed with, when it was.
    """

    object: np.ndarray
    support: np.ndarray
    origin_x: float = 0.0
    origin_y: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    positions: ScanPositions | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.object.shape)  # type: ignore[return-value]


def object_format(path: str | os.PathLike[str]) -> str:
    """``"h5"`` or ``"npz"`` from the suffix of an output object file; ConfigError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in H5_SUFFIXES:
        return "h5"
    if suffix == ".npz":
        return "npz"
    raise ConfigError(f"{path}: cannot tell the object format from suffix {suffix or '(none)'}; use .npz, .h5 or .hdf5")


def write_object(path: str | os.PathLike[str], image: ObjectImage) -> Path:
    """Write an object file atomically (format from the suffix); returns the final path."""
    fmt = object_format(path)
    obj = np.asarray(image.object, np.complex64)
    support = np.asarray(image.support, bool)
    if obj.ndim != 2 or support.shape != obj.shape:
        raise ValueError(f"object {obj.shape} and support {support.shape} must be one 2-D shape")
    meta = to_json(dict(image.metadata), indent=None)
    scalars = {"origin_x": np.float64(image.origin_x), "origin_y": np.float64(image.origin_y)}
    if image.positions is not None:
        scalars.update({"positions_index": np.asarray(image.positions.index, np.int64),
                        "positions_x": np.asarray(image.positions.x, np.float64),
                        "positions_y": np.asarray(image.positions.y, np.float64)})
    if fmt == "npz":
        arrays = {"object": obj, "support": support, **{k: np.asarray(v) for k, v in scalars.items()}}
        return save_npz_arrays(path, {**arrays, "metadata": np.asarray(meta)})
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = OBJECT_FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.create_dataset("object", data=obj)
        f.create_dataset("support", data=support)
        for key, value in scalars.items():
            f.create_dataset(key, data=value)
        f.create_dataset("metadata", data=meta, dtype=h5py.string_dtype("utf-8"))
    return Path(path)


def _finite_scalar(value: Any, key: str, where: str) -> float:
    if value is None:
        return 0.0
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(arr[0]):
        raise DataError(f"{where}: key '{key}' must hold one finite number; found {value!r}")
    return float(arr[0])


def _check_object(raw: dict[str, Any], where: str) -> ObjectImage:
    """Coerce and validate what a reader found (``object`` under one of its names)."""
    name = next((k for k in _OBJECT_KEYS if raw.get(k) is not None), None)
    if name is None:
        if any(k in raw["keys"] for k in _DATASET_KEYS):
            raise DataError(f"{where}: the dataset has no ground-truth object (key 'object'); "
                            "use a simulated dataset or an object file written by `ptycho stitch`")
        raise DataError(f"{where}: no key 'object' or 'objectGuess'; found keys {', '.join(raw['keys']) or 'none'}")
    obj = coerce_array(raw[name], np.complex64, key=name, where=where)
    while obj.ndim > 2 and obj.shape[0] == 1:  # (1, H, W) as in Ptychodus products
        obj = obj[0]
    if obj.ndim != 2 or obj.size == 0:
        raise DataError(f"{where}: key '{name}' has shape {obj.shape}; expected a non-empty (H, W) array")
    if not np.isfinite(obj).all():
        raise DataError(f"{where}: key '{name}' contains NaN or Inf values; expected finite numbers")
    support = np.ones(obj.shape, bool)
    if raw.get("support") is not None:
        support = np.asarray(raw["support"])
        if support.dtype.kind not in "biu" or support.shape != obj.shape:
            raise DataError(f"{where}: key 'support' has dtype {support.dtype} and shape {support.shape}; "
                            f"expected bool {obj.shape}")
        support = support.astype(bool)
    origin = [_finite_scalar(raw.get(key), key, where) for key in ("origin_x", "origin_y")]
    return ObjectImage(np.ascontiguousarray(obj), support, origin[0], origin[1], raw.get("metadata") or {},
                       _check_positions(raw, where))


def _check_positions(raw: dict[str, Any], where: str) -> ScanPositions | None:
    """The optional refined positions: all three keys or none, one length, finite, indexes ≥ 0."""
    present = [key for key in _POSITION_KEYS if raw.get(key) is not None]
    if not present:
        return None
    if len(present) != len(_POSITION_KEYS):
        raise DataError(f"{where}: has {', '.join(present)} but not all of {', '.join(_POSITION_KEYS)}; "
                        "the refined positions are incomplete")
    index = coerce_array(raw["positions_index"], np.int64, key="positions_index", where=where)
    x = coerce_array(raw["positions_x"], np.float64, key="positions_x", where=where)
    y = coerce_array(raw["positions_y"], np.float64, key="positions_y", where=where)
    if index.ndim != 1 or x.shape != index.shape or y.shape != index.shape:
        raise DataError(f"{where}: positions_index {index.shape}, positions_x {x.shape}, positions_y {y.shape}; "
                        "expected one (P,) length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (index.size and index.min() < 0):
        raise DataError(f"{where}: the refined positions hold NaN/Inf or negative pattern indexes")
    return ScanPositions(index, x, y)


def _read_h5_object(path: Path) -> dict[str, Any]:
    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            raw: dict[str, Any] = {"keys": sorted(f.keys())}
            for key in (*_OBJECT_KEYS, "support", "origin_x", "origin_y", *_POSITION_KEYS):
                if key in f and isinstance(f[key], h5py.Dataset):
                    raw[key] = f[key][()]
            if "metadata" in f:
                text = f["metadata"][()]
                text = text.reshape(-1)[0] if isinstance(text, np.ndarray) else text
                raw["metadata"] = parse_json_metadata(text, where=where)
            return raw
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: cannot read as HDF5; corrupt or not HDF5 ({one_line(exc)})") from None


def _read_npz_object(path: Path) -> dict[str, Any]:
    with NpzReader(path) as npz:
        raw: dict[str, Any] = {"keys": npz.keys}
        for key in (*_OBJECT_KEYS, "support", "origin_x", "origin_y", *_POSITION_KEYS):
            raw[key] = npz.optional(key)
        if "metadata" in npz:
            raw["metadata"] = read_metadata_array(npz.array("metadata"), where=npz.where)
        return raw


def read_truth(path: str | os.PathLike[str]) -> ObjectImage:
    """The ground truth at ``path``: a dataset's ``object`` (the dataset loaded and validated like
    any input, so a corrupt or inconsistent dataset is refused) or an object file.

    The returned metadata holds ``object_fingerprint`` (and, for a dataset, ``dataset_fingerprint``).

    Raises
    ------
    DataError
        What :func:`read_object` or :func:`~ptycho.io.datasets.load_dataset` refuse, or a dataset
        without ground truth.
    """
    from ptycho.data.dataset import object_fingerprint
    from ptycho.io.datasets import load_dataset

    raw_keys = _keys(Path(path))
    if raw_keys is not None and any(k in raw_keys for k in _DATASET_KEYS):
        with load_dataset(path) as ds:
            if ds.object is None:
                raise DataError(f"{path}: the dataset has no ground-truth object (key 'object'); "
                                "use a simulated dataset or an object file written by `ptycho stitch`")
            meta = {"object_fingerprint": ds.object_fingerprint(), "dataset_fingerprint": ds.fingerprint()}
            obj = np.ascontiguousarray(ds.object, np.complex64)
        return ObjectImage(obj, np.ones(obj.shape, bool), 0.0, 0.0, meta)
    image = read_object(path)
    meta = {**image.metadata, "object_fingerprint": object_fingerprint(image.object)}
    return ObjectImage(image.object, image.support, image.origin_x, image.origin_y, meta)


def _keys(path: Path) -> list[str] | None:
    """The top-level names in an HDF5 or NPZ file, or None if it cannot be listed."""
    try:
        if path.suffix.lower() in H5_SUFFIXES:
            with h5py.File(path, "r") as f:
                return list(f.keys())
        with NpzReader(path) as npz:
            return npz.keys
    except (OSError, ValueError, DataError):
        return None


def read_object(path: str | os.PathLike[str]) -> ObjectImage:
    """Read an object file, a plain NPZ/HDF5 holding ``object`` (or legacy ``objectGuess``), or a
    dataset file's ground-truth ``object``.

    Files without ``support``/``origin_*`` get an all-True support and origin ``(0, 0)`` (a
    dataset's object is the global frame itself).

    Raises
    ------
    DataError
        Missing or unreadable file, no object key (a dataset without ground truth), bad shapes,
        NaN/Inf.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: {'is a directory, expected a file' if p.exists() else 'file not found'}")
    suffix = p.suffix.lower()
    if suffix not in (*H5_SUFFIXES, ".npz"):
        raise DataError(f"{path}: unknown object format for suffix {suffix or '(none)'}; expected .npz, .h5 or .hdf5")
    raw = _read_h5_object(p) if suffix in H5_SUFFIXES else _read_npz_object(p)
    return _check_object(raw, str(path))
