"""Patches files (written by ``infer``, read by ``stitch``), docs/formats.md#patches-files.

**Patches file** (HDF5)::

    patches  (G, C, N, N) complex64  full object patch of each of the C = gridsize² group members
    x, y     (G, C)       float64    each member's window centre, global object pixels (docs/conventions.md#windows)
    index    (G, C)       int64      dataset pattern index of each member
    attrs: format = "ptycho-patches", format_version = 1, N, gridsize, provenance (JSON string),
           object_shape (H, W) when known

``patches`` is stored in chunks of whole groups and streamed: written and read a block of groups
at a time, so memory does not grow with the number of groups.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array
from ptycho.errors import DataError
from ptycho.io.atomic import one_line, parse_json_metadata, to_json
from ptycho.io.h5_stream import StreamingH5Writer

__all__ = ["PATCHES_FORMAT", "PatchesFile", "PatchesWriter", "read_patches"]

PATCHES_FORMAT = "ptycho-patches"
FORMAT_VERSION = 1
#: Target size of one HDF5 chunk of ``patches`` (whole groups per chunk).
CHUNK_BYTES = 1 << 20


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

    @property
    def refined_positions(self) -> bool:
        """Whether ``infer`` placed the windows at refined positions (``provenance["positions"]``)."""
        return str(self.provenance.get("positions", "")).startswith("refined")

    def pattern_positions(self) -> Any:
        """Each dataset pattern's window centre, once (:class:`~ptycho.io.objects.ScanPositions`),
        or None without ``index``: the positions the patches were made at."""
        from ptycho.io.objects import ScanPositions

        if self.index is None:
            return None
        index, first = np.unique(self.index.reshape(-1), return_index=True)
        return ScanPositions(index.astype(np.int64), self.x.reshape(-1)[first], self.y.reshape(-1)[first])

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


class PatchesWriter(StreamingH5Writer):
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

    _unit = "groups"

    def __init__(self, path: str | os.PathLike[str], n_groups: int, C: int, N: int,
                 provenance: Mapping[str, Any] | str | None = None, object_shape: tuple[int, int] | None = None) -> None:
        self.n_groups, self.C, self.N = int(n_groups), int(C), int(N)
        self.gridsize = math.isqrt(self.C)
        if self.gridsize**2 != self.C or self.N < 1 or self.n_groups < 0:
            raise ValueError(f"need a square C ≥ 1, N ≥ 1 and n_groups ≥ 0; got C={C}, N={N}, n_groups={n_groups}")
        super().__init__(path, self.n_groups)
        if isinstance(provenance, str):
            parse_json_metadata(provenance, where="PatchesWriter provenance")  # must be a JSON object
            self._provenance = provenance
        else:
            self._provenance = to_json(dict(provenance or {}), indent=None)
        self._object_shape = object_shape

    def _create_layout(self, f: h5py.File) -> None:
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
