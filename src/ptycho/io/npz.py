"""Canonical NPZ dataset files (docs/formats.md#datasets) and safe NPZ reading.

Same keys as the HDF5 layout (``diffraction``, ``x``, ``y``, ``probe``, optional ``object`` and
``scan_index``, ``mask``, ``probe_modes``); ``metadata`` is a 0-d unicode array holding a JSON object. NPZ is read whole
into memory, so it suits small datasets. Files are always opened with ``allow_pickle=False``:
an object (pickled) array is reported as a :class:`~ptycho.errors.DataError`, never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.coercion import coerce_array, coerce_mask
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.io.atomic import atomic_output, one_line, parse_json_metadata, to_json
from ptycho.io.limits import check_npz_member

__all__ = ["NpzReader", "read_npz", "save_npz_arrays", "write_npz"]

REQUIRED_KEYS = ("diffraction", "x", "y", "probe")
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


class NpzReader:
    """Read arrays from an ``.npz`` file one key at a time, with one-line DataErrors.

    Parameters
    ----------
    path : str or path-like
        The NPZ file. Opened immediately with ``allow_pickle=False``.

    Notes
    -----
    Use as a context manager. Only the keys asked for are decompressed, so an unused pickled
    entry in a foreign file does no harm; asking for one raises a DataError saying so.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.where = str(path)
        try:
            # our own handle: np.load(path) leaks its file when the zip directory is corrupt
            self._handle = open(path, "rb")
        except OSError as exc:
            raise DataError(f"{self.where}: cannot read the file ({one_line(exc)})") from None
        try:
            self._check_magic(self._handle.read(6))
            self._handle.seek(0)
            self._npz = np.load(self._handle, allow_pickle=False)
        except BaseException as exc:
            self._handle.close()
            if isinstance(exc, _READ_ERRORS):
                raise DataError(
                    f"{self.where}: cannot open as NPZ; the file is corrupt, truncated or not NPZ "
                    f"({one_line(exc)})"
                ) from None
            raise

    def _check_magic(self, head: bytes) -> None:
        """Tell a zip archive from a bare pickle or .npy before numpy guesses."""
        if head.startswith(b"PK"):
            return
        if head.startswith(b"\x93NUMPY"):
            raise DataError(f"{self.where}: holds a single .npy array; expected an NPZ archive")
        if head.startswith(b"\x80"):
            raise DataError(
                f"{self.where}: the file is a Python pickle, not an NPZ archive; refusing to "
                "unpickle (allow_pickle is never enabled)"
            )
        raise DataError(
            f"{self.where}: not an NPZ archive (no zip signature); corrupt or wrong format"
        )

    @property
    def keys(self) -> list[str]:
        """Names of the arrays in the archive."""
        return list(self._npz.files)

    def __contains__(self, key: str) -> bool:
        return key in self._npz.files

    def array(self, key: str, dtype: Any = None) -> np.ndarray:
        """The array stored under ``key``, optionally coerced to ``dtype``.

        Raises
        ------
        DataError
            Missing key, pickled (object) array, corrupt member, or non-numeric dtype.
        """
        if key not in self:
            raise DataError(
                f"{self.where}: missing key '{key}'; found keys {', '.join(self.keys) or 'none'}"
            )
        check_npz_member(self._npz.zip, key, self.where)  # before numpy allocates what the header claims
        try:
            value = self._npz[key]
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise DataError(
                    f"{self.where}: key '{key}' holds a pickled object array; refusing to unpickle "
                    "(allow_pickle is never enabled); store plain numeric arrays instead"
                ) from None
            raise DataError(f"{self.where}: key '{key}' is unreadable ({one_line(exc)})") from None
        except _READ_ERRORS as exc:
            raise DataError(
                f"{self.where}: key '{key}' is unreadable; the file is corrupt ({one_line(exc)})"
            ) from None
        if dtype is None:
            return value
        return coerce_array(value, dtype, key=key, where=self.where)

    def optional(self, key: str, dtype: Any = None) -> np.ndarray | None:
        """Like :meth:`array` but ``None`` when the key is absent."""
        return self.array(key, dtype) if key in self else None

    def close(self) -> None:
        """Close the archive and the file under it."""
        self._npz.close()
        self._handle.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metadata_array(value: np.ndarray, *, where: str) -> dict[str, Any]:
    """Decode a stored ``metadata`` entry (0-d unicode/bytes array of JSON) to a dict."""
    if value.dtype.kind not in "US" or value.size != 1:
        raise DataError(
            f"{where}: key 'metadata' has dtype {value.dtype} and shape {value.shape}; "
            "expected a 0-d string holding JSON"
        )
    return parse_json_metadata(value.reshape(-1)[0], where=where)


def read_npz(path: str | os.PathLike[str]) -> Dataset:
    """Read a canonical NPZ dataset into memory.

    Returns
    -------
    Dataset
        diffraction ``(M, N, N)`` float32, x/y ``(M,)`` float64, probe ``(N, N)`` complex64,
        optional object complex64 and scan_index int64, metadata dict.

    Raises
    ------
    DataError
        Unreadable file, missing key, pickled array, non-numeric dtype or bad metadata JSON.
    """
    with NpzReader(path) as npz:
        for key in REQUIRED_KEYS:
            if key not in npz:
                raise DataError(
                    f"{npz.where}: missing key '{key}'; a canonical dataset needs "
                    + ", ".join(f"'{k}'" for k in REQUIRED_KEYS)
                )
        metadata = npz.optional("metadata")
        mask = npz.optional("mask")
        return Dataset(
            diffraction=npz.array("diffraction", np.float32),
            x=npz.array("x", np.float64),
            y=npz.array("y", np.float64),
            probe=npz.array("probe", np.complex64),
            object=npz.optional("object", np.complex64),
            scan_index=npz.optional("scan_index", np.int64),
            metadata={} if metadata is None else read_metadata_array(metadata, where=npz.where),
            source=npz.where,
            mask=None if mask is None else coerce_mask(mask, where=npz.where),
            probe_modes=npz.optional("probe_modes", np.complex64),
        )


def save_npz_arrays(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], *, compress: bool = False
) -> Path:
    """Write ``arrays`` to an NPZ file atomically (never with object arrays).

    Writes through an open file handle so ``np.savez`` cannot append a suffix to the name.
    """
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind == "O":
            raise ValueError(f"refusing to write object array '{key}' (it would need pickle)")
    save = np.savez_compressed if compress else np.savez
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        save(handle, **arrays)
    return Path(path)


def write_npz(path: str | os.PathLike[str], dataset: Dataset, *, compress: bool = False) -> Path:
    """Write ``dataset`` as a canonical NPZ file, atomically.

    The whole diffraction stack is read into memory (NPZ cannot be streamed); use HDF5 for
    large data. Returns the final path.
    """
    arrays: dict[str, np.ndarray] = {
        "diffraction": dataset.read_patterns(),
        "x": np.asarray(dataset.x, dtype=np.float64),
        "y": np.asarray(dataset.y, dtype=np.float64),
        "probe": np.asarray(dataset.probe, dtype=np.complex64),
        "metadata": np.array(to_json(dict(dataset.metadata), indent=None)),
    }
    if dataset.object is not None:
        arrays["object"] = np.asarray(dataset.object, dtype=np.complex64)
    if dataset.scan_index is not None:
        arrays["scan_index"] = np.asarray(dataset.scan_index, dtype=np.int64)
    if dataset.mask is not None:
        arrays["mask"] = np.asarray(dataset.mask, dtype=bool)
    if dataset.probe_modes is not None:
        arrays["probe_modes"] = np.asarray(dataset.probe_modes, dtype=np.complex64)
    return save_npz_arrays(path, arrays, compress=compress)
