"""Declared sizes checked against what a file really stores and what the machine holds, before any
array is read (a header can claim a terabyte in a file of a few bytes).

Every check raises :class:`~ptycho.errors.DataError` (exit code 3) naming the file, the key, the
declared shape and what is really there.
"""

from __future__ import annotations

import math
import os
import zipfile
from typing import Any

import numpy as np

from ptycho.errors import DataError

__all__ = ["available_memory_bytes", "check_h5_dataset", "check_npz_member", "format_bytes"]


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover - unreachable


def available_memory_bytes() -> int | None:
    """Memory the machine could give this process now (``MemAvailable``), else its physical
    memory, else None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _declared(shape: tuple[int, ...], dtype: Any) -> int:
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize


def _check_memory(nbytes: int, key: str, shape: tuple[int, ...], where: str) -> None:
    memory = available_memory_bytes()
    if memory is not None and nbytes > memory:
        raise DataError(f"{where}: key '{key}' declares shape {shape} ({format_bytes(nbytes)}), more than the "
                        f"{format_bytes(memory)} of memory available; it cannot be read into memory "
                        "(store large data as HDF5, which is streamed)")


def check_npz_member(archive: zipfile.ZipFile, key: str, where: str) -> None:
    """Refuse an NPZ member whose header declares more data than the member holds, or more than
    fits in memory (NPZ arrays are read whole).

    Parameters
    ----------
    archive : the open zip archive of the NPZ file
    key : the array name (member ``key.npy``)
    where : the file, for messages
    """
    name = key if key in archive.namelist() else f"{key}.npy"
    try:
        info = archive.getinfo(name)
        with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return  # a newer header the reader may still understand
            shape, _, dtype = read_header(member)
            header = member.tell()
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
        return  # the reader itself reports an unreadable member
    if dtype.hasobject:
        return  # refused as a pickled array by the reader
    nbytes = _declared(shape, dtype)
    stored = info.file_size - header
    if nbytes > stored:
        raise DataError(f"{where}: key '{key}' declares shape {shape} {dtype} ({format_bytes(nbytes)}) but the file "
                        f"holds only {format_bytes(stored)} of it; the file is truncated or corrupt")
    _check_memory(nbytes, key, tuple(shape), where)


def check_h5_dataset(dataset: Any, key: str, where: str, *, in_memory: bool) -> None:
    """Refuse an HDF5 dataset that declares data it does not store (unwritten chunks or space),
    and, when it is to be read whole (``in_memory``), one larger than memory.

    Parameters
    ----------
    dataset : h5py.Dataset
    key, where : for messages
    in_memory : the caller reads the whole array at once (else it streams it)
    """
    shape = tuple(int(s) for s in dataset.shape)
    nbytes = _declared(shape, dataset.dtype)
    if nbytes == 0 or getattr(dataset, "is_virtual", False) or dataset.external:
        return
    if dataset.chunks is None:
        stored = dataset.id.get_storage_size()
        if stored < nbytes and shape != ():
            raise DataError(f"{where}: key '{key}' declares shape {shape} ({format_bytes(nbytes)}) but the file "
                            f"stores only {format_bytes(stored)} of it; the data were never written or the file is "
                            "truncated")
    else:
        total = math.prod(math.ceil(s / c) for s, c in zip(shape, dataset.chunks, strict=True))
        written = dataset.id.get_num_chunks()
        if written < total:
            raise DataError(f"{where}: key '{key}' declares shape {shape} in {total} chunks but only {written} hold "
                            "data; the rest were never written (an interrupted or corrupt file)")
    if in_memory:
        _check_memory(nbytes, key, shape, where)
