"""Validation of a dataset on load (docs/formats.md#validation).

Every failure raises :class:`~ptycho.errors.DataError` (exit code 3) with one line that names the
file, the key, what was expected and what was found. The diffraction stack is scanned in chunks
of :data:`VALIDATION_CHUNK` patterns so that validating a lazily read HDF5 dataset keeps memory
bounded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.errors import ConfigError, DataError

__all__ = ["CHECK_BOUNDS_MODES", "VALIDATION_CHUNK", "validate_dataset"]

#: Patterns read at a time when scanning the diffraction stack for NaN/Inf/negative values.
VALIDATION_CHUNK = 1024
#: Slack (object pixels) allowed when testing whether a window lies inside the object.
BOUNDS_TOL_PX = 1e-6
#: Accepted values of ``check_bounds``.
CHECK_BOUNDS_MODES = ("warn", "error", "off")
#: Largest object canvas (pixels) the positions may span: 2**28 px is 2 GiB of complex64, far
#: beyond any scan, so a larger span means positions not in object pixels (metres, or corrupt).
MAX_CANVAS_PX = 1 << 28


def validate_dataset(ds: Dataset, *, where: str, check_bounds: str = "warn") -> None:
    """Check a dataset against the canonical layout and physical sanity (docs/formats.md#datasets).

    Parameters
    ----------
    ds : Dataset
        Diffraction ``(M, N, N)`` counts (may be lazy), ``x``/``y`` ``(M,)``, probe ``(N, N)`` or
        ``(K, N, N)`` modes, optional object ``(H, W)`` and scan_index ``(M,)``.
    where : str
        Name of the source (usually the file path), prefixed to every message.
    check_bounds : {"warn", "error", "off"}
        What to do when a probe window at ``(x, y)`` (covering pixel centres ``x ± (N−1)/2``)
        reaches outside the object: emit a :class:`UserWarning`, raise, or skip the check.
        Only applies when the dataset carries an object.

    Raises
    ------
    DataError
        Wrong ranks or shapes, probe size ≠ pattern size, position count ≠ pattern count,
        empty dataset, NaN/Inf anywhere, negative counts, out-of-bounds windows (``"error"``).
    ConfigError
        If ``check_bounds`` is not one of :data:`CHECK_BOUNDS_MODES`.
    """
    if check_bounds not in CHECK_BOUNDS_MODES:
        raise ConfigError(
            f"check_bounds must be one of {', '.join(CHECK_BOUNDS_MODES)}; got {check_bounds!r}"
        )
    M, N = _check_diffraction_shape(ds.diffraction, where)
    for key in ("x", "y"):
        _check_vector(getattr(ds, key), key, M, where, what="positions")
    _check_probe(ds.probe, N, where)
    if ds.object is not None:
        _check_rank(ds.object, "object", 2, "(H, W)", where)
    if ds.scan_index is not None:
        _check_vector(ds.scan_index, "scan_index", M, where, what="indices")
    _check_detector_extras(ds, N, where)
    for key in ("x", "y", "probe", "object"):
        value = getattr(ds, key)
        if value is not None:
            _check_finite(np.asarray(value), key, where)
    _check_span(ds, N, where)
    _scan_diffraction(ds.diffraction, where)
    if ds.object is not None and check_bounds != "off":
        _check_bounds(ds, N, where, check_bounds)


def _check_diffraction_shape(diffraction: Any, where: str) -> tuple[int, int]:
    if diffraction is None:
        raise DataError(f"{where}: missing key 'diffraction'")
    shape = tuple(int(s) for s in diffraction.shape)
    if len(shape) != 3:
        raise DataError(
            f"{where}: key 'diffraction' has shape {shape} ({len(shape)}-D); expected 3-D (M, N, N)"
        )
    if shape[1] != shape[2]:
        raise DataError(
            f"{where}: key 'diffraction' has {shape[1]}×{shape[2]} patterns; "
            "expected square patterns (M, N, N)"
        )
    kind = np.dtype(getattr(diffraction, "dtype", np.float32)).kind
    if kind not in "iuf":
        raise DataError(
            f"{where}: key 'diffraction' has dtype {diffraction.dtype}; expected float32 counts"
        )
    if shape[0] == 0:
        raise DataError(
            f"{where}: dataset is empty: key 'diffraction' has shape {shape}; "
            "expected at least one pattern"
        )
    return shape[0], shape[1]


def _check_rank(value: Any, key: str, ndim: int, expected: str, where: str) -> tuple[int, ...]:
    shape = tuple(np.shape(value))
    if len(shape) != ndim:
        raise DataError(
            f"{where}: key '{key}' has shape {shape} ({len(shape)}-D); expected {ndim}-D {expected}"
        )
    return shape


def _check_vector(value: Any, key: str, M: int, where: str, *, what: str) -> None:
    if value is None:
        raise DataError(f"{where}: missing key '{key}'")
    (length,) = _check_rank(value, key, 1, "(M,)", where)
    if length != M:
        raise DataError(
            f"{where}: key '{key}' has {length} {what} but there are {M} patterns; "
            f"expected {M} (one per pattern)"
        )


def _check_probe(probe: Any, N: int, where: str) -> None:
    """``(N, N)``, or ``(K, N, N)`` incoherent modes with ``K ≥ 1`` (docs/formats.md#datasets)."""
    if probe is None:
        raise DataError(f"{where}: missing key 'probe'")
    shape = tuple(np.shape(probe))
    if len(shape) not in (2, 3):
        raise DataError(f"{where}: key 'probe' has shape {shape} ({len(shape)}-D); expected (N, N) or (K, N, N) "
                        "incoherent modes")
    if len(shape) == 3 and shape[0] == 0:
        raise DataError(f"{where}: key 'probe' has shape {shape}: no modes; expected at least one (K ≥ 1)")
    if shape[-2:] != (N, N):
        raise DataError(
            f"{where}: key 'probe' has shape {shape} but the patterns are {N}×{N}; "
            "the probe (every mode) must match the pattern size"
        )


def _check_detector_extras(ds: Dataset, N: int, where: str) -> None:
    """The optional ``mask`` ``(N, N)`` (some pixel valid) and ``probe_modes`` ``(K, N, N)``."""
    if ds.mask is not None:
        shape = _check_rank(ds.mask, "mask", 2, "(N, N)", where)
        if shape != (N, N):
            raise DataError(f"{where}: key 'mask' has shape {shape} but the patterns are {N}×{N}; "
                            "the mask must match the pattern size")
        if not np.asarray(ds.mask, dtype=bool).any():
            raise DataError(f"{where}: key 'mask' marks no pixel as valid; expected True/1 for measured pixels")
    if ds.probe_modes is not None:
        shape = _check_rank(ds.probe_modes, "probe_modes", 3, "(K, N, N)", where)
        if shape[1:] != (N, N):
            raise DataError(f"{where}: key 'probe_modes' has shape {shape}; expected (K, {N}, {N})")
        _check_finite(np.asarray(ds.probe_modes), "probe_modes", where)


def _check_span(ds: Dataset, N: int, where: str) -> None:
    """Refuse positions whose span needs an absurd canvas (every reconstruction allocates one)."""
    x, y = np.asarray(ds.x, np.float64), np.asarray(ds.y, np.float64)
    width, height = float(np.ptp(x)) + N, float(np.ptp(y)) + N
    if width * height > MAX_CANVAS_PX:
        raise DataError(
            f"{where}: positions span {np.ptp(x):.3g} × {np.ptp(y):.3g} px (x in [{x.min():.3g}, {x.max():.3g}], "
            f"y in [{y.min():.3g}, {y.max():.3g}]), a canvas over {MAX_CANVAS_PX} px; expected positions in "
            "object pixels"
        )


def _nonfinite_counts(arr: np.ndarray) -> tuple[int, int]:
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    return n_nan, n_inf


def _describe_nonfinite(n_nan: int, n_inf: int) -> str:
    parts = [f"{n_nan} NaN"] if n_nan else []
    parts += [f"{n_inf} Inf"] if n_inf else []
    return " and ".join(parts)


def _check_finite(arr: np.ndarray, key: str, where: str) -> None:
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return
    n_nan, n_inf = _nonfinite_counts(arr)
    raise DataError(
        f"{where}: key '{key}' contains {_describe_nonfinite(n_nan, n_inf)} values; "
        "expected finite numbers everywhere"
    )


def _scan_diffraction(diffraction: Any, where: str) -> None:
    """One pass over the stack: per chunk, min and max reveal NaN/Inf and negatives cheaply."""
    M = int(diffraction.shape[0])
    chunk = VALIDATION_CHUNK
    is_float = np.dtype(diffraction.dtype).kind == "f"
    n_nan = n_inf = n_neg = 0
    first_bad = first_neg = -1
    global_min = np.inf
    for start in range(0, M, chunk):
        block = np.asarray(diffraction[start : start + chunk])
        lo = block.min()
        if is_float and not (np.isfinite(lo) and np.isfinite(block.max())):
            # rare path: count, remember where, and skip the negativity test (NaN wins)
            a, b = _nonfinite_counts(block)
            n_nan, n_inf = n_nan + a, n_inf + b
            if first_bad < 0:
                first_bad = start + _first_pattern(~np.isfinite(block))
            continue
        if lo < 0:
            n_neg += int(np.count_nonzero(block < 0))
            global_min = min(global_min, float(lo))
            if first_neg < 0:
                first_neg = start + _first_pattern(block < 0)
    if n_nan or n_inf:
        raise DataError(
            f"{where}: key 'diffraction' contains {_describe_nonfinite(n_nan, n_inf)} values "
            f"(first in pattern {first_bad}); expected finite counts everywhere"
        )
    if n_neg:
        raise DataError(
            f"{where}: key 'diffraction' has {n_neg} negative values (min {global_min:g}, first in "
            f"pattern {first_neg}); expected counts ≥ 0"
        )


def _first_pattern(mask: np.ndarray) -> int:
    """Index of the first pattern (axis 0) of a boolean ``(k, N, N)`` mask holding a True."""
    return int(np.argmax(mask.reshape(mask.shape[0], -1).any(axis=1)))


def _check_bounds(ds: Dataset, N: int, where: str, mode: str) -> None:
    H, W = (int(s) for s in np.shape(ds.object))
    half = (N - 1) / 2
    x = np.asarray(ds.x, dtype=np.float64)
    y = np.asarray(ds.y, dtype=np.float64)
    x_hi, y_hi = (W - 1) - half, (H - 1) - half
    outside = (
        (x < half - BOUNDS_TOL_PX)
        | (x > x_hi + BOUNDS_TOL_PX)
        | (y < half - BOUNDS_TOL_PX)
        | (y > y_hi + BOUNDS_TOL_PX)
    )
    n_out = int(np.count_nonzero(outside))
    if not n_out:
        return
    message = (
        f"{where}: {n_out} of {x.size} positions put the {N}×{N} probe window outside the "
        f"{H}×{W} object; expected x in [{half:g}, {x_hi:g}] and y in [{half:g}, {y_hi:g}], "
        f"found x in [{x.min():g}, {x.max():g}] and y in [{y.min():g}, {y.max():g}]"
    )
    if mode == "error":
        raise DataError(message)
    warnings.warn(message, UserWarning, stacklevel=3)
