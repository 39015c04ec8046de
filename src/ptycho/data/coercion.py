"""Values read from a file → canonical arrays: the dtype and shape conversions every reader
applies before a dataset, object or patches file is built (the checks of a whole dataset:
:mod:`ptycho.data.validation`). A value that cannot be converted is a
:class:`~ptycho.errors.DataError` naming the file and the key.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ptycho.errors import DataError

__all__ = ["coerce_array", "coerce_mask", "probe_modes_from", "reduce_leading"]

_KINDS = {"f": "iuf", "c": "iufc", "i": "iu"}


def coerce_array(value: Any, dtype: Any, *, key: str, where: str) -> np.ndarray:
    """Convert a stored array to its canonical dtype, refusing non-numeric data.

    Parameters
    ----------
    value : array-like
        The array as read from the file.
    dtype : numpy dtype
        Canonical dtype (float32/float64 for real data, complex64, int64).
    key, where : str
        Key name and file, for the error message.

    Returns
    -------
    numpy.ndarray
        ``value`` cast to ``dtype`` (no copy when already of that dtype).

    Raises
    ------
    DataError
        If the stored dtype cannot represent the quantity (strings, objects, complex counts,
        non-integral indices).
    """
    arr = np.asarray(value)
    target = np.dtype(dtype)
    allowed = _KINDS[target.kind]
    ok = arr.dtype.kind in allowed
    if not ok and target.kind == "i" and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not ok:
        raise DataError(f"{where}: key '{key}' has dtype {arr.dtype}; expected {target.name}")
    return arr.astype(target, copy=False)


def coerce_mask(value: Any, *, key: str = "mask", where: str) -> np.ndarray:
    """A stored valid-pixel mask as bool: ``bool``, or integers holding only 0 and 1 (1 = valid).

    Raises
    ------
    DataError
        Another dtype, or integers other than 0/1 (a bit-field mask such as CXI's, whose set bits
        mean *bad*, must be converted on import, not guessed here).
    """
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iu":
        raise DataError(f"{where}: key '{key}' has dtype {arr.dtype}; expected bool or uint8 (True/1 = valid pixel)")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise DataError(f"{where}: key '{key}' holds values other than 0 and 1; expected a valid-pixel mask "
                        "(1 = valid); convert a bit-field detector mask with `ptycho import`")
    return arr.astype(bool)


def probe_modes_from(arr: np.ndarray, key: str, where: str) -> np.ndarray:
    """``(…, K, h, w)`` → the probe's incoherent modes: ``(h, w)`` for one mode, else ``(K, h, w)``.

    The axis just before the image axes holds the modes (Ptychodus ``(C, K, h, w)``, pty-chi
    ``(OPR, K, h, w)``, tike's leading axes); of every earlier axis the first entry is kept (the
    main probe), with a warning when there were more.

    Raises
    ------
    DataError
        An empty probe (no modes).
    """
    if arr.ndim <= 2:
        return arr
    if arr.size == 0:
        raise DataError(f"{where}: key '{key}' has shape {arr.shape}: no modes; expected at least one (K ≥ 1)")
    lead = arr.shape[:-3]
    if any(size > 1 for size in lead):
        warnings.warn(f"{where}: '{key}' has shape {arr.shape}: kept the first entry of the axes {lead} before the "
                      "modes (the main probe)", UserWarning, stacklevel=3)
    modes = arr.reshape(-1, *arr.shape[-3:])[0]
    return modes[0] if len(modes) == 1 else modes


def reduce_leading(arr: np.ndarray, key: str, where: str, *, combine: bool = False) -> np.ndarray:
    """``(…, h, w)`` → ``(h, w)``: singleton leading dimensions vanish; several entries give the
    first (several object layers with ``combine``: their product, the projection approximation),
    with a warning naming the file, the key and the count. Probes keep their modes:
    :func:`probe_modes_from`."""
    if arr.ndim <= 2:
        return arr
    count = int(np.prod(arr.shape[:-2]))
    flat = arr.reshape(-1, *arr.shape[-2:])
    if count > 1:
        what = "layers; using their product (projection approximation)" if combine else "entries; using the first"
        warnings.warn(f"{where}: '{key}' has shape {arr.shape}: {count} {what}", UserWarning, stacklevel=3)
        if combine:
            return np.prod(flat, axis=0).astype(arr.dtype)
    return flat[0]
