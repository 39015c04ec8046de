"""Patterns larger than ``N``: centre-crop or bin them, and resample what depends on the detector.

Both act on DC-centred patterns (zero frequency at index ``n//2``) and keep it at ``N//2``:

- ``crop``: keep the central ``N×N`` detector pixels. The field of view in the object plane,
  ``λz/dx_det``, is unchanged, so the object pixel ``λz/(N·dx_det)`` grows by ``n/N`` and
  positions in object pixels shrink by ``N/n``. The probe is cropped in its far field (the same
  detector pixels) and transformed back: its power becomes the photons those pixels receive.
- ``bin``: sum ``b×b`` blocks, ``b = n // N`` (after a centre crop to ``b·N`` when ``n`` is no
  multiple of ``N``). The detector pixel grows ``b``-fold, the object pixel is unchanged (up to
  that crop), the field of view shrinks ``b``-fold: the probe is cut to its central ``N×N`` in
  real space and rescaled to its former power (binning conserves photons). A binned pixel is valid
  only when all of its ``b²`` pixels are. For even ``b`` the centre of a binned pixel lies
  ``(b−1)/2`` fine pixels from its nominal frequency (the usual price of binning).

Import does this once and records it (``ptycho.workflows.import_data``), so every command that
reads the result sees the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptycho.errors import ConfigError, field

__all__ = ["REDUCTIONS", "Reduction", "plan_reduction"]

REDUCTIONS = ("crop", "bin")


@dataclass(frozen=True)
class Reduction:
    """How ``(n_y, n_x)`` detector patterns become ``N×N``.

    Attributes
    ----------
    n_y, n_x : int
        Source pattern size.
    N : int
        Output size.
    method : {"none", "crop", "bin"}
    factor : int
        Binning factor ``b`` (1 unless binning).
    """

    n_y: int
    n_x: int
    N: int
    method: str
    factor: int = 1

    @property
    def extent(self) -> int:
        """Side of the central region kept before binning: ``b·N``."""
        return self.factor * self.N

    def _offsets(self) -> tuple[int, int]:
        return self.n_y // 2 - self.extent // 2, self.n_x // 2 - self.extent // 2

    @property
    def object_pixel_scale(self) -> tuple[float, float]:
        """New object pixel / old one, per axis (y, x): ``n / (b·N)``."""
        return self.n_y / self.extent, self.n_x / self.extent

    def patterns(self, block: np.ndarray) -> np.ndarray:
        """``(k, n_y, n_x)`` counts → ``(k, N, N)`` float32 (a copy)."""
        oy, ox = self._offsets()
        kept = np.asarray(block, np.float32)[:, oy:oy + self.extent, ox:ox + self.extent]
        if self.factor == 1:
            return np.array(kept)
        b, N = self.factor, self.N
        return kept.reshape(-1, N, b, N, b).sum(axis=(2, 4), dtype=np.float64).astype(np.float32)

    def mask(self, valid: np.ndarray) -> np.ndarray:
        """``(n_y, n_x)`` valid pixels → ``(N, N)``: a binned pixel is valid if all of its are."""
        oy, ox = self._offsets()
        kept = np.asarray(valid, bool)[oy:oy + self.extent, ox:ox + self.extent]
        b, N = self.factor, self.N
        return kept.reshape(N, b, N, b).all(axis=(1, 3))

    def probe(self, mode: np.ndarray) -> tuple[np.ndarray, float]:
        """A square ``(n, n)`` probe mode → ``(N, N)`` complex64 and the share of its power the
        real-space cut of binning dropped before the rescale (0 for a crop)."""
        mode = np.asarray(mode, np.complex128)
        n = mode.shape[-1]
        if self.method == "none" or n == self.N:
            return mode.astype(np.complex64), 0.0
        far = np.fft.fftshift(np.fft.fft2(mode, norm="ortho"))
        off = n // 2 - self.extent // 2
        near = np.fft.ifft2(np.fft.ifftshift(far[off:off + self.extent, off:off + self.extent]), norm="ortho")
        if self.factor == 1:
            return near.astype(np.complex64), 0.0
        power = float(np.sum(np.abs(near) ** 2))
        cut = self.extent // 2 - self.N // 2
        kept = near[cut:cut + self.N, cut:cut + self.N]
        kept_power = float(np.sum(np.abs(kept) ** 2))
        lost = 1.0 - kept_power / power if power > 0 else 0.0
        scale = np.sqrt(power / kept_power) if kept_power > 0 else 1.0
        return (kept * scale).astype(np.complex64), lost


def plan_reduction(n_y: int, n_x: int, N: int | None, method: str) -> Reduction:
    """The reduction from ``n_y × n_x`` patterns to ``N×N`` (``N=None``: keep square patterns).

    Raises
    ------
    ConfigError
        Unknown method, ``N`` larger than the patterns, non-square patterns without ``N``, or
        binning with ``N`` more than half the patterns (nothing to bin).
    """
    if method not in REDUCTIONS:
        raise ConfigError(f"import.reduce: unknown method {method!r}; expected one of {', '.join(REDUCTIONS)}")
    if N is None:
        if n_y != n_x:
            raise ConfigError(f"patterns are {n_y}×{n_x}, not square; set {field('import.N')} to crop or bin them "
                              "to N×N")
        return Reduction(n_y, n_x, n_y, "none")
    smallest = min(n_y, n_x)
    if N > smallest:
        raise ConfigError(f"import.N = {N} exceeds the {n_y}×{n_x} patterns; patterns can be reduced, not enlarged")
    if N == n_y == n_x:
        return Reduction(n_y, n_x, N, "none")
    if method == "crop":
        return Reduction(n_y, n_x, N, "crop")
    factor = smallest // N
    if factor < 2:
        raise ConfigError(f"import.N = {N}: {n_y}×{n_x} patterns hold fewer than 2×2 pixels per binned pixel; "
                          f"set {field('import.reduce')} to crop, or a smaller {field('import.N')}")
    return Reduction(n_y, n_x, N, "bin", factor)
