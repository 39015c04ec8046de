"""Object files (written by ``stitch``) and patches files (written by ``infer``), SPEC §8.

**Object file** (``.npz`` or ``.h5``/``.hdf5``)::

    object            (H, W) complex64  the stitched object
    support           (H, W) bool       pixels covered by at least one crop
    origin_x/origin_y ()     float64    global object-pixel coordinate of canvas pixel (0, 0):
                                        canvas pixel (r, c) is global pixel (origin_y + r, origin_x + c)
    metadata          JSON object string (NPZ: 0-d unicode array; HDF5: string dataset)
    HDF5 attrs: format = "ptycho-object", format_version = 1

**Patches file** (HDF5)::

    patches  (G, C, N, N) complex64  full object patch of each of the C = gridsize² group members
    x, y     (G, C)       float64    each member's window centre, global object pixels (SPEC §2)
    index    (G, C)       int64      dataset pattern index of each member
    attrs: format = "ptycho-patches", format_version = 1, N, gridsize, provenance (JSON string),
           object_shape (H, W) when known

``patches`` is stored in chunks of whole groups and read lazily, a block of groups at a time.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.validation import coerce_array
from ptycho.errors import ConfigError, DataError
from ptycho.io.atomic import (
    atomic_output,
    discard_temp,
    one_line,
    parse_json_metadata,
    temp_path_for,
    to_json,
)
from ptycho.io.h5 import H5_SUFFIXES
from ptycho.io.npz import NpzReader, read_metadata_array, save_npz_arrays

__all__ = [
    "OBJECT_FORMAT", "PATCHES_FORMAT", "ObjectImage", "PatchesFile", "PatchesWriter",
    "object_format", "read_object", "read_patches", "write_object",
]

OBJECT_FORMAT = "ptycho-object"
PATCHES_FORMAT = "ptycho-patches"
FORMAT_VERSION = 1
#: Target size of one HDF5 chunk of ``patches`` (whole groups per chunk).
CHUNK_BYTES = 1 << 20
_OBJECT_KEYS = ("object", "objectGuess")  # canonical first, then the PtychoPINN name
_DATASET_KEYS = ("diffraction", "diff3d")


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
    """

    object: np.ndarray
    support: np.ndarray
    origin_x: float = 0.0
    origin_y: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

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
    origin = {"origin_x": np.float64(image.origin_x), "origin_y": np.float64(image.origin_y)}
    if fmt == "npz":
        arrays = {"object": obj, "support": support, **{k: np.asarray(v) for k, v in origin.items()}}
        return save_npz_arrays(path, {**arrays, "metadata": np.asarray(meta)})
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = OBJECT_FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.create_dataset("object", data=obj)
        f.create_dataset("support", data=support)
        for key, value in origin.items():
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
    return ObjectImage(np.ascontiguousarray(obj), support, origin[0], origin[1], raw.get("metadata") or {})


def _read_h5_object(path: Path) -> dict[str, Any]:
    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            raw: dict[str, Any] = {"keys": sorted(f.keys())}
            for key in (*_OBJECT_KEYS, "support", "origin_x", "origin_y"):
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
        for key in (*_OBJECT_KEYS, "support", "origin_x", "origin_y"):
            raw[key] = npz.optional(key)
        if "metadata" in npz:
            raw["metadata"] = read_metadata_array(npz.array("metadata"), where=npz.where)
        return raw


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


@dataclass(frozen=True)
class PatchesFile:
    """A validated, lazily read patches file (see the module docstring).

    ``x``, ``y`` ``(G, C)`` float64 and ``index`` ``(G, C)`` int64 (or None) are in memory;
    patches are read by :meth:`iter_chunks`.
    """

    path: Path
    N: int
    gridsize: int
    n_groups: int
    C: int
    x: np.ndarray
    y: np.ndarray
    index: np.ndarray | None
    provenance: dict[str, Any]
    object_shape: tuple[int, int] | None

    def iter_chunks(self, chunk_groups: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(start, patches (k, C, N, N) complex64, x (k, C), y (k, C))`` blocks of groups.

        Raises DataError on a block holding NaN/Inf or on a read error.
        """
        where = str(self.path)
        try:
            with h5py.File(self.path, "r") as f:
                dset = f["patches"]
                for start in range(0, self.n_groups, max(1, int(chunk_groups))):
                    stop = min(start + chunk_groups, self.n_groups)
                    block = np.asarray(dset[start:stop]).astype(np.complex64, copy=False)
                    bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
                    if bad.any():
                        raise DataError(f"{where}: key 'patches' contains NaN or Inf values (first in group "
                                        f"{start + int(np.argmax(bad))}); rerun `ptycho infer` or check the model")
                    yield start, block, self.x[start:stop], self.y[start:stop]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{where}: cannot read key 'patches'; corrupt file ({one_line(exc)})") from None


def _attr_int(f: h5py.File, key: str, where: str) -> int:
    if key not in f.attrs:
        raise DataError(f"{where}: missing attribute '{key}'; a patches file needs attributes N and gridsize")
    value = np.asarray(f.attrs[key]).reshape(-1)
    if value.size != 1 or value.dtype.kind not in "iuf" or value[0] < 1 or value[0] != int(value[0]):
        raise DataError(f"{where}: attribute '{key}' is {f.attrs[key]!r}; expected a positive integer")
    return int(value[0])


def _validate_patches(f: h5py.File, where: str) -> PatchesFile:
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt != PATCHES_FORMAT:
        raise DataError(f"{where}: not a patches file (format attribute {fmt!r}, expected {PATCHES_FORMAT!r}); "
                        "write one with `ptycho infer`")
    version = f.attrs.get("format_version", FORMAT_VERSION)
    if int(version) > FORMAT_VERSION:
        raise DataError(f"{where}: format_version {int(version)} is newer than this ptycho reads ({FORMAT_VERSION})")
    N, g = _attr_int(f, "N", where), _attr_int(f, "gridsize", where)
    for key in ("patches", "x", "y"):
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise DataError(f"{where}: missing key '{key}'; a patches file needs 'patches', 'x', 'y', 'index'")
    shape = f["patches"].shape
    if len(shape) != 4 or shape[1:] != (g * g, N, N):
        raise DataError(f"{where}: key 'patches' has shape {shape}; expected (G, {g * g}, {N}, {N}) for N={N}, gridsize={g}")
    if shape[0] == 0:
        raise DataError(f"{where}: the file holds no patches (G = 0)")
    if f["patches"].dtype.kind not in "fc":
        raise DataError(f"{where}: key 'patches' has dtype {f['patches'].dtype}; expected complex64")
    arrays: dict[str, Any] = {}
    for key, dtype in (("x", np.float64), ("y", np.float64), ("index", np.int64)):
        if key not in f:
            continue
        arr = coerce_array(f[key][()], dtype, key=key, where=where)
        if arr.shape != shape[:2]:
            raise DataError(f"{where}: key '{key}' has shape {arr.shape}; expected {shape[:2]} like 'patches'")
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: key '{key}' contains NaN or Inf values; expected finite positions")
        arrays[key] = arr
    object_shape = f.attrs.get("object_shape")
    return PatchesFile(
        path=Path(where), N=N, gridsize=g, n_groups=int(shape[0]), C=g * g, x=arrays["x"], y=arrays["y"],
        index=arrays.get("index"), provenance=parse_json_metadata(f.attrs.get("provenance", "{}"), where=where),
        object_shape=None if object_shape is None else tuple(int(v) for v in np.asarray(object_shape).reshape(-1)),
    )


def read_patches(path: str | os.PathLike[str]) -> PatchesFile:
    """Open and validate a patches file; the patches themselves stay on disk.

    Raises
    ------
    DataError
        Missing or non-HDF5 file, wrong ``format``, missing keys, shape mismatches, NaN positions.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: {'is a directory, expected a patches file' if p.exists() else 'file not found'}")
    try:
        with h5py.File(p, "r") as f:
            return _validate_patches(f, str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot read as an HDF5 patches file; corrupt or not HDF5 ({one_line(exc)})") from None


class PatchesWriter:
    """Stream a patches file to disk a block of groups at a time, atomically.

    Parameters
    ----------
    path : path-like
    n_groups, C, N : int
        The file holds ``patches (n_groups, C, N, N)``; ``C`` must be a square (``gridsize²``).
    provenance : mapping or str
        JSON-serialisable mapping, or a JSON object string (model dir, dataset path and hash, …); stored as a JSON string attribute.
    object_shape : (H, W), optional

    Notes
    -----
    Use as a context manager and :meth:`write` every group. On clean exit the file is renamed into
    place; on an exception, or if a group was never written (``RuntimeError``), no file appears.
    """

    def __init__(self, path: str | os.PathLike[str], n_groups: int, C: int, N: int,
                 provenance: Mapping[str, Any] | str | None = None, object_shape: tuple[int, int] | None = None) -> None:
        self.path, self.n_groups, self.C, self.N = Path(path), int(n_groups), int(C), int(N)
        self.gridsize = math.isqrt(self.C)
        if self.gridsize**2 != self.C or self.N < 1 or self.n_groups < 0:
            raise ValueError(f"need a square C ≥ 1, N ≥ 1 and n_groups ≥ 0; got C={C}, N={N}, n_groups={n_groups}")
        if isinstance(provenance, str):
            parse_json_metadata(provenance, where="PatchesWriter provenance")  # must be a JSON object
            self._provenance = provenance
        else:
            self._provenance = to_json(dict(provenance or {}), indent=None)
        self._object_shape = object_shape
        self._written = np.zeros(self.n_groups, bool)
        self._tmp: Path | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> PatchesWriter:
        self._tmp = temp_path_for(self.path)
        try:
            f = self._file = h5py.File(self._tmp, "w")
            for key, value in (("format", PATCHES_FORMAT), ("format_version", FORMAT_VERSION), ("N", self.N),
                               ("gridsize", self.gridsize), ("provenance", self._provenance)):
                f.attrs[key] = value
            if self._object_shape is not None:
                f.attrs["object_shape"] = np.asarray(self._object_shape, np.int64)
            G, C, N = self.n_groups, self.C, self.N
            per_chunk = max(1, min(G, CHUNK_BYTES // (C * N * N * 8)))
            f.create_dataset("patches", (G, C, N, N), np.complex64, chunks=(per_chunk, C, N, N) if G else None)
            for key, dtype in (("x", np.float64), ("y", np.float64), ("index", np.int64)):
                f.create_dataset(key, (G, C), dtype)
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, start: int, patches: Any, x: Any, y: Any, index: Any) -> None:
        """Write groups ``start … start + k − 1``: patches ``(k, C, N, N)``, x, y, index ``(k, C)``."""
        if self._file is None:
            raise RuntimeError("PatchesWriter.write called outside its `with` block")
        block = np.asarray(patches, np.complex64)
        k = block.shape[0] if block.ndim else 0
        if block.shape != (k, self.C, self.N, self.N) or not 0 <= start <= start + k <= self.n_groups:
            raise ValueError(f"block of shape {block.shape} at {start} does not fit ({self.n_groups}, {self.C}, {self.N}, {self.N})")
        self._file["patches"][start:start + k] = block
        for key, value, dtype in (("x", x, np.float64), ("y", y, np.float64), ("index", index, np.int64)):
            arr = np.asarray(value, dtype)
            if arr.shape != (k, self.C):
                raise ValueError(f"{key} has shape {arr.shape}; expected {(k, self.C)}")
            self._file[key][start:start + k] = arr
        self._written[start:start + k] = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._abort()
            return
        if not self._written.all():
            missing = np.flatnonzero(~self._written)
            self._abort()
            raise RuntimeError(f"{self.path}: {missing.size} of {self.n_groups} groups were never written "
                               f"(first missing: {int(missing[0])}); no file was written")
        try:
            self._file.close()  # type: ignore[union-attr]
            os.replace(self._tmp, self.path)  # type: ignore[arg-type]
        except BaseException:
            self._abort()
            raise
        self._file = None

    def _abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self._file = None
        if self._tmp is not None:
            discard_temp(self._tmp)
