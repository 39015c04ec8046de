"""Canonical HDF5 dataset files (docs/formats.md#datasets): streamed writing, lazy reading.

Layout (root group)::

    diffraction  (M, N, N) float32   counts, DC-centred, chunked (1, N, N): one pattern per chunk
    x, y         (M,)      float64   probe-centre positions, object pixels
    probe        (N, N)    complex64 √counts
    object       (H, W)    complex64 optional ground truth
    scan_index   (M,)      int64     optional
    mask         (N, N)    bool      optional; True = valid detector pixel
    probe_modes  (K, N, N) complex64 optional; every mode of a multi-mode probe
    metadata     scalar UTF-8 string holding a JSON object
    attrs: format = "ptycho-dataset", format_version = 1

Reading keeps the file open and exposes ``diffraction`` as a lazy :class:`h5py.Dataset`, so a
dataset larger than memory can be streamed; everything else is read eagerly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array, coerce_mask
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.io.atomic import one_line, parse_json_metadata, to_json
from ptycho.io.h5_stream import StreamingH5Writer
from ptycho.io.limits import check_h5_dataset

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "H5DatasetWriter", "StreamingH5Writer", "read_h5", "write_h5"]

H5_SUFFIXES = (".h5", ".hdf5")  # file names read and written as HDF5

FORMAT_NAME = "ptycho-dataset"
FORMAT_VERSION = 1
#: Patterns copied at a time by :func:`write_h5` (bounded memory for lazy sources).
WRITE_CHUNK = 1024
REQUIRED_KEYS = ("diffraction", "x", "y", "probe")


class H5DatasetWriter(StreamingH5Writer):
    """Stream a canonical HDF5 dataset to disk, block by block, atomically.

    Parameters
    ----------
    path : str or path-like
        Final file name. Data go to a temporary file beside it, renamed on clean exit.
    n_patterns : int
        Number of patterns ``M`` that will be written.
    N : int
        Pattern size; patterns are ``(N, N)``.
    x, y : (M,) array-like
        Positions in object pixels, stored float64.
    probe : (N, N) array-like
        Probe in √counts, stored complex64.
    object : (H, W) array-like, optional
        Ground-truth object, stored complex64.
    scan_index : (M,) array-like, optional
        Stored int64.
    mask : (N, N) array-like, optional
        Valid detector pixels, stored bool.
    probe_modes : (K, N, N) array-like, optional
        Every mode of a multi-mode probe, stored complex64.
    metadata : mapping, optional
        JSON-serialisable; stored as a JSON string.
    compression : {None, "gzip", "lzf"}
        Per-chunk compression of ``diffraction``; off by default for speed.

    Notes
    -----
    Use as a context manager and call :meth:`write` for every pattern (blocks in any order).
    On clean exit the file is renamed into place; on an exception, or if some pattern was never
    written (then ``RuntimeError``), the temporary file is deleted and no file appears.
    """

    _unit = "patterns"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_patterns: int,
        N: int,
        x: Any,
        y: Any,
        probe: Any,
        object: Any = None,  # noqa: A002 - the canonical key name
        scan_index: Any = None,
        metadata: Mapping[str, Any] | None = None,
        compression: str | None = None,
        mask: Any = None,
        probe_modes: Any = None,
    ) -> None:
        self.n_patterns = int(n_patterns)
        self.N = int(N)
        if self.n_patterns < 0 or self.N < 1:
            raise ValueError(f"need n_patterns ≥ 0 and N ≥ 1; got {n_patterns}, {N}")
        super().__init__(path, self.n_patterns)
        self._arrays: dict[str, np.ndarray] = {
            "x": np.asarray(x, dtype=np.float64),
            "y": np.asarray(y, dtype=np.float64),
            "probe": np.asarray(probe, dtype=np.complex64),
        }
        if object is not None:
            self._arrays["object"] = np.asarray(object, dtype=np.complex64)
        if scan_index is not None:
            self._arrays["scan_index"] = np.asarray(scan_index, dtype=np.int64)
        if mask is not None:
            self._arrays["mask"] = np.asarray(mask, dtype=bool)
        if probe_modes is not None:
            self._arrays["probe_modes"] = np.asarray(probe_modes, dtype=np.complex64)
        for key in ("x", "y", "scan_index"):
            if key in self._arrays and self._arrays[key].shape != (self.n_patterns,):
                raise ValueError(
                    f"{key} has shape {self._arrays[key].shape}; expected ({self.n_patterns},)"
                )
        self._metadata_json = to_json(dict(metadata or {}), indent=None)
        self._compression = compression
        self._diffraction: h5py.Dataset | None = None

    def _forget_handles(self) -> None:
        self._diffraction = None

    def _create_layout(self, f: h5py.File) -> None:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        shape = (self.n_patterns, self.N, self.N)
        # HDF5 rejects chunks on a zero-length fixed-size dataset: store those contiguously
        chunks = (1, self.N, self.N) if self.n_patterns else None
        self._diffraction = f.create_dataset(
            "diffraction",
            shape=shape,
            dtype=np.float32,
            chunks=chunks,
            compression=self._compression if chunks else None,
        )
        self._diffraction.attrs["units"] = "photon counts"
        for key, value in self._arrays.items():
            f.create_dataset(key, data=value)
        f["x"].attrs["units"] = f["y"].attrs["units"] = "object pixels"
        f.create_dataset("metadata", data=self._metadata_json, dtype=h5py.string_dtype("utf-8"))

    def write(self, start: int, block: Any) -> None:
        """Write patterns ``start … start + k − 1``.

        Parameters
        ----------
        start : int
            Index of the first pattern of the block.
        block : (k, N, N) array-like
            Counts; converted to float32.
        """
        if self._diffraction is None:
            raise RuntimeError("H5DatasetWriter.write called outside its `with` block")
        data = np.asarray(block, dtype=np.float32)
        if data.ndim != 3 or data.shape[1:] != (self.N, self.N):
            raise ValueError(f"block has shape {data.shape}; expected (k, {self.N}, {self.N})")
        stop = int(start) + data.shape[0]
        if start < 0 or stop > self.n_patterns:
            raise ValueError(
                f"block covers patterns {start}…{stop - 1}; the dataset has {self.n_patterns}"
            )
        self._diffraction[start:stop] = data
        self._written[start:stop] = True


def write_h5(
    path: str | os.PathLike[str],
    dataset: Dataset,
    *,
    chunk: int = WRITE_CHUNK,
    compression: str | None = None,
) -> Path:
    """Write ``dataset`` as a canonical HDF5 file, atomically.

    Diffraction is copied ``chunk`` patterns at a time, so a lazily read source (even the file
    being replaced) is never loaded whole. Returns the final path.
    """
    M, N = dataset.n_patterns, dataset.N
    with H5DatasetWriter(
        path,
        n_patterns=M,
        N=N,
        x=dataset.x,
        y=dataset.y,
        probe=dataset.probe,
        object=dataset.object,
        scan_index=dataset.scan_index,
        metadata=dataset.metadata,
        compression=compression,
        mask=dataset.mask,
        probe_modes=dataset.probe_modes,
    ) as writer:
        for start in range(0, M, chunk):
            writer.write(start, dataset.read_patterns(slice(start, min(start + chunk, M))))
    return Path(path)


def read_h5(path: str | os.PathLike[str]) -> Dataset:
    """Open a canonical HDF5 dataset; ``diffraction`` stays on disk (lazy).

    Returns
    -------
    Dataset
        ``diffraction`` is an open ``h5py.Dataset`` ``(M, N, N)``; x, y (float64), probe and
        object (complex64), scan_index (int64) and metadata are in memory. Call
        ``dataset.close()`` (or use it as a context manager) to release the file.

    Raises
    ------
    DataError
        Not HDF5, truncated or corrupt, a required key missing, non-numeric data, a newer
        ``format_version``, or invalid metadata JSON.
    """
    where = str(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{where}: cannot open as HDF5; the file is corrupt, truncated or not HDF5 "
            f"({one_line(exc)})"
        ) from None
    try:
        return _read_open_file(f, where)
    except BaseException as exc:
        f.close()
        if isinstance(exc, (OSError, ValueError, KeyError, RuntimeError, TypeError)):
            reason = one_line(exc)
            raise DataError(f"{where}: cannot read the dataset; corrupt file ({reason})") from None
        raise


def _read_open_file(f: h5py.File, where: str) -> Dataset:
    version = f.attrs.get("format_version")
    if version is not None and int(version) > FORMAT_VERSION:
        raise DataError(
            f"{where}: format_version {int(version)} is newer than this ptycho reads "
            f"({FORMAT_VERSION}); upgrade ptycho"
        )
    for key in REQUIRED_KEYS:
        if key not in f:
            raise DataError(
                f"{where}: missing key '{key}'; a canonical dataset needs "
                + ", ".join(f"'{k}'" for k in REQUIRED_KEYS)
            )
    for key in (*REQUIRED_KEYS, "object", "scan_index", "mask", "probe_modes"):
        if key in f and not isinstance(f[key], h5py.Dataset):
            raise DataError(f"{where}: key '{key}' is an HDF5 group; expected a dataset")
    diffraction = f["diffraction"]
    if diffraction.dtype.kind not in "iuf":
        raise DataError(
            f"{where}: key 'diffraction' has dtype {diffraction.dtype}; expected float32 counts"
        )
    check_h5_dataset(diffraction, "diffraction", where, in_memory=False)  # streamed, but must be stored

    def eager(key: str, dtype: Any) -> np.ndarray | None:
        if key not in f:
            return None
        if f[key].dtype.kind in "biufc":
            check_h5_dataset(f[key], key, where, in_memory=True)
        return coerce_array(f[key][()], dtype, key=key, where=where)

    raw = f["metadata"][()] if "metadata" in f else f.attrs.get("metadata", "")
    if isinstance(raw, np.ndarray):  # a 0-d or 1-element array of strings
        raw = raw.reshape(-1)[0] if raw.size else ""
    return Dataset(
        diffraction=diffraction,
        x=eager("x", np.float64),
        y=eager("y", np.float64),
        probe=eager("probe", np.complex64),
        object=eager("object", np.complex64),
        scan_index=eager("scan_index", np.int64),
        metadata=parse_json_metadata(raw, where=where),
        source=where,
        mask=coerce_mask(f["mask"][()], where=where) if "mask" in f else None,
        probe_modes=eager("probe_modes", np.complex64),
        _closer=f.close,
    )
