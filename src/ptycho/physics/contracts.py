"""What an object generator, a probe maker and a scan must return (``ptycho.registry``), checked
on every call: a plugin's mistake is reported by name instead of being clipped, broadcast or
turned into an internal error later.

Each check raises :class:`~ptycho.errors.DataError` (exit code 3) naming the record and the field
that selected it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho.errors import ConfigError, DataError

PATTERN_TOL = 1e-6
"""Slack allowed outside ``[0, 1]`` in an object pattern (rounding in a generator)."""
WINDOW_TOL_PX = 1e-6
"""Slack allowed for a window edge at the object border."""


def _what(value: Any) -> str:
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if arr is None or arr.dtype.kind in "OSU":
        return type(value).__name__
    return f"{arr.dtype} array of shape {arr.shape}"


def checked_object(result: Any, size: int, kind: str, make: Any) -> np.ndarray:
    """The ``(size, size)`` complex64 object from an object generator's result: a complex
    transmission (``file:``) is used as it is, a real pattern is checked (:func:`checked_pattern`)
    and mapped by ``make(pattern)``."""
    arr = np.asarray(result) if not isinstance(result, (str, bytes)) else np.asarray([])
    if arr.dtype.kind != "c":
        return make(checked_pattern(result, size, kind))
    if arr.shape != (size, size) or not np.isfinite(arr).all():
        raise DataError(f"object '{kind}' returned a {_what(result)}{'' if arr.shape != (size, size) else ' with NaN or Inf'}; "
                        f"a complex transmission must be a finite ({size}, {size}) array (`simulate.object.kind`)")
    return arr.astype(np.complex64)


def checked_pattern(pattern: Any, size: int, kind: str) -> np.ndarray:
    """An object generator's result: real, finite, ``(size, size)``, within ``[0, 1]``."""
    arr = np.asarray(pattern) if not isinstance(pattern, (str, bytes)) else np.asarray([])
    if arr.dtype.kind not in "biuf" or arr.shape != (size, size):
        raise DataError(f"object '{kind}' returned a {_what(pattern)}; its generator must return a real "
                        f"({size}, {size}) pattern in [0, 1], or a complex transmission (`simulate.object.kind`)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"object '{kind}' returned NaN or Inf values; expected a pattern in [0, 1]")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -PATTERN_TOL or hi > 1 + PATTERN_TOL:
        raise DataError(f"object '{kind}' returned values in [{lo:.3g}, {hi:.3g}]; its generator must return a "
                        "pattern in [0, 1] (values outside would be clipped)")
    return np.clip(arr, 0.0, 1.0)


def checked_probe(probe: Any, N: int, kind: str) -> np.ndarray:
    """A probe maker's result: numeric, finite, ``(N, N)`` or a mixed state ``(K, N, N)``, not all zero."""
    arr = np.asarray(probe) if not isinstance(probe, (str, bytes)) else np.asarray([])
    if arr.dtype.kind not in "biufc" or arr.shape[-2:] != (N, N) or arr.ndim not in (2, 3) or arr.size == 0:
        raise DataError(f"probe '{kind}' returned a {_what(probe)}; its maker must return a complex ({N}, {N}) "
                        f"array, or (K, {N}, {N}) for K modes (`simulate.probe.kind`)")
    if not np.isfinite(arr).all() or not np.any(arr):
        raise DataError(f"probe '{kind}' returned {'NaN or Inf values' if np.any(arr) else 'all zeros'}; "
                        "expected a finite, non-zero probe")
    return arr


def checked_positions(positions: Any, object_shape: tuple[int, int], N: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A scan's result: two equal-length finite position vectors whose windows lie inside the object."""
    try:
        x, y = (np.asarray(v, dtype=np.float64).reshape(-1) for v in positions)
    except (TypeError, ValueError):
        raise DataError(f"scan '{kind}' returned a {type(positions).__name__}; its make must return (x, y) "
                        "arrays of positions in object pixels (`simulate.scan.kind`)") from None
    if x.shape != y.shape or x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"scan '{kind}' returned {x.size} x and {y.size} y positions; expected as many of each, "
                        "at least one, all finite")
    half = (N - 1) / 2
    H, W = object_shape
    outside = ((x < half - WINDOW_TOL_PX) | (x > W - 1 - half + WINDOW_TOL_PX)
               | (y < half - WINDOW_TOL_PX) | (y > H - 1 - half + WINDOW_TOL_PX))
    if outside.any():
        raise DataError(f"scan '{kind}': {int(outside.sum())} of {x.size} positions put the {N}×{N} window outside "
                        f"the {H}×{W} object (x must lie in [{half:g}, {W - 1 - half:g}], y in "
                        f"[{half:g}, {H - 1 - half:g}]); a simulation needs every window inside the object")
    return x, y


def refuse_scan_argument(kind: str) -> None:
    """Scans take no argument (``ScanSpec.make`` has none): ``grid:5`` is a mistake, not a setting."""
    name, sep, arg = kind.partition(":")
    if sep:
        raise ConfigError(f"simulate.scan.kind: '{kind}': scans take no argument after ':'; use '{name}' and set "
                          "its options (e.g. `simulate.scan.step_px`, `simulate.scan.n_images`)")
