"""NumPy operators of the iterative engines, with exactly ptycho's conventions (SPEC §2).

* :func:`window_geometry`, :func:`extract` and :func:`place` are NumPy twins of
  ``ptycho.physics.forward.extract_patches`` / ``place_patches``: a window of size ``N`` at
  ``(x, y)`` covers pixel centres ``x − (N−1)/2 … x + (N−1)/2``; sub-pixel positions use
  **bilinear interpolation** from the ``(N+1)×(N+1)`` block of whole pixels whose first pixel is
  ``floor(x − (N−1)/2)``; :func:`place` is the exact adjoint (transpose) of :func:`extract`.
  The tests pin both against the TensorFlow originals and check the adjoint identity.
* :func:`farfield` / :func:`backfield` are the unitary 2-D DFT (``norm="ortho"``). They work in
  the *unshifted* (DC at ``[0, 0]``) layout; the measured DC-centred moduli are ``ifftshift``-ed
  once on load (:func:`measured_modulus`) instead of shifting every wave on every iteration.

Why NumPy and not the TensorFlow operators: an iterative solver makes many small calls (one per
minibatch) whose inputs change every call; on 2 CPU cores TensorFlow's per-call dispatch and the
complex ↔ real splitting of ``scatter_nd`` cost more than the arithmetic, while NumPy views,
separable interpolation and block-wise accumulation are cheap and deterministic (one
extract → FFT → inverse FFT → place round trip of 8 windows of 64² on a 192² canvas: 0.95 ms
here, 5.7 ms as a ``tf.function`` of ptycho's operators), and the command needs no TensorFlow.
``scipy.fft`` gives single-precision FFTs.

Shapes: ``B`` windows, ``N`` window side, ``(H, W)`` the canvas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

FFT_WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""Most threads a batched FFT uses (scipy.fft splits the batch; the result does not depend on it)."""
FFT_THREADED_MIN = 1 << 18
"""Batches smaller than this many elements run on one thread: for minibatch-sized FFTs on a
2-core machine, starting threads costs more than it saves."""


def _workers(array: np.ndarray) -> int:
    return FFT_WORKERS if array.size >= FFT_THREADED_MIN else 1


@dataclass(frozen=True)
class Windows:
    """Where ``B`` windows of side ``N`` read a canvas (precomputed once per scan).

    Attributes
    ----------
    iy, ix : (B,) int64
        Canvas row/column of each window's ``(N+1)×(N+1)`` bilinear block corner.
    fy, fx : (B,) float32
        Fractional offsets in ``[0, 1)``: the window's first pixel centre is at
        ``(iy + fy, ix + fx)``.
    N : int
    """

    iy: np.ndarray
    ix: np.ndarray
    fy: np.ndarray
    fx: np.ndarray
    N: int

    def __len__(self) -> int:
        return len(self.ix)

    def take(self, index: np.ndarray) -> "Windows":
        """The windows at ``index`` (a minibatch)."""
        return Windows(self.iy[index], self.ix[index], self.fy[index], self.fx[index], self.N)

    def shifted(self, rows: int, cols: int) -> "Windows":
        """The same windows on a canvas whose origin moved by ``(−rows, −cols)`` pixels."""
        return Windows(self.iy + rows, self.ix + cols, self.fy, self.fx, self.N)


def window_geometry(x: np.ndarray, y: np.ndarray, N: int, origin_x: float = 0.0, origin_y: float = 0.0) -> Windows:
    """Bilinear blocks of windows centred at global ``(x, y)`` on a canvas whose pixel ``(0, 0)``
    is global pixel ``(origin_y, origin_x)``.

    Parameters
    ----------
    x, y : (B,) float64
        Window centres, global object pixels.
    N : int
    origin_x, origin_y : float
        Whole-pixel origin of the canvas.
    """
    half = (N - 1) / 2.0
    x0 = np.asarray(x, np.float64) - half - origin_x
    y0 = np.asarray(y, np.float64) - half - origin_y
    ix, iy = np.floor(x0), np.floor(y0)
    return Windows(iy.astype(np.int64), ix.astype(np.int64), (y0 - iy).astype(np.float32),
                   (x0 - ix).astype(np.float32), int(N))


def block_extent(windows: Windows) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` (half-open) of the canvas pixels the blocks touch."""
    n = windows.N + 1
    return int(windows.iy.min()), int(windows.iy.max()) + n, int(windows.ix.min()), int(windows.ix.max()) + n


def _blocks(canvas: np.ndarray, windows: Windows) -> np.ndarray:
    """``(B, N+1, N+1)`` copies of the whole-pixel blocks (raises if a block leaves the canvas)."""
    H, W = canvas.shape
    n = windows.N + 1
    r0, r1, c0, c1 = block_extent(windows)
    if r0 < 0 or c0 < 0 or r1 > H or c1 > W:
        raise ValueError(f"windows reach rows {r0}…{r1 - 1}, cols {c0}…{c1 - 1} outside the {H}×{W} canvas")
    view = np.lib.stride_tricks.sliding_window_view(canvas, (n, n))
    return view[windows.iy, windows.ix]


def extract(canvas: np.ndarray, windows: Windows) -> np.ndarray:
    """Read the ``N×N`` windows from ``canvas`` with bilinear interpolation.

    Parameters
    ----------
    canvas : (H, W) complex64 or float32
    windows : Windows (B of them)

    Returns
    -------
    (B, N, N), the dtype of ``canvas``.
    """
    block = _blocks(canvas, windows)
    fy = windows.fy[:, None, None].astype(canvas.real.dtype)
    fx = windows.fx[:, None, None].astype(canvas.real.dtype)
    rows = block[:, :-1, :] + fy * (block[:, 1:, :] - block[:, :-1, :])  # (B, N, N+1)
    return rows[:, :, :-1] + fx * (rows[:, :, 1:] - rows[:, :, :-1])


def spread(patches: np.ndarray, windows: Windows) -> np.ndarray:
    """Adjoint of the interpolation step of :func:`extract`: ``(B, N, N)`` → ``(B, N+1, N+1)``."""
    B, N, _ = patches.shape
    fy = windows.fy[:, None, None].astype(patches.real.dtype)
    fx = windows.fx[:, None, None].astype(patches.real.dtype)
    right = patches * fx
    cols = np.empty((B, N, N + 1), patches.dtype)
    cols[:, :, :-1] = patches - right
    cols[:, :, -1] = 0
    cols[:, :, 1:] += right
    down = cols * fy
    out = np.empty((B, N + 1, N + 1), patches.dtype)
    out[:, :-1] = cols - down
    out[:, -1] = 0
    out[:, 1:] += down
    return out


def place(patches: np.ndarray, windows: Windows, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`extract`: the sum of every window's bilinear footprint.

    Windows are added one after another into a double-precision canvas (a fixed order, so the
    result is reproducible bit for bit); a loop of block additions is faster here than a
    scatter over every pixel.

    Parameters
    ----------
    patches : (B, N, N) complex or real
    windows : Windows
    shape : (H, W)

    Returns
    -------
    (H, W) complex128 or float64.
    """
    H, W = shape
    n = windows.N + 1
    if len(windows):
        r0, r1, c0, c1 = block_extent(windows)
        if r0 < 0 or c0 < 0 or r1 > H or c1 > W:
            raise ValueError(f"windows reach rows {r0}…{r1 - 1}, cols {c0}…{c1 - 1} outside the {H}×{W} canvas")
    blocks = spread(patches, windows)
    canvas = np.zeros(shape, np.complex128 if np.iscomplexobj(blocks) else np.float64)
    for block, r, c in zip(blocks, windows.iy.tolist(), windows.ix.tolist()):
        canvas[r:r + n, c:c + n] += block
    return canvas


def farfield(waves: np.ndarray) -> np.ndarray:
    """Unitary 2-D DFT over the last two axes, DC at ``[0, 0]`` (not shifted). May overwrite
    ``waves``."""
    import scipy.fft  # here, not at module level: `ptycho --help` loads this plugin

    return scipy.fft.fft2(waves, norm="ortho", workers=_workers(waves), overwrite_x=True)


def backfield(spectra: np.ndarray) -> np.ndarray:
    """Inverse of :func:`farfield`. May overwrite ``spectra``."""
    import scipy.fft

    return scipy.fft.ifft2(spectra, norm="ortho", workers=_workers(spectra), overwrite_x=True)


def measured_modulus(counts: np.ndarray) -> np.ndarray:
    """``√counts`` of DC-centred patterns, moved to the unshifted FFT layout.

    Parameters
    ----------
    counts : (M, N, N) float, DC-centred (fftshifted) photon counts

    Returns
    -------
    (M, N, N) float32, ``|F(P·O)|`` as :func:`farfield` computes it.
    """
    modulus = np.sqrt(np.maximum(np.asarray(counts, np.float32), 0.0))
    return np.ascontiguousarray(np.fft.ifftshift(modulus, axes=(-2, -1)))


def modulus_correction(spectra: np.ndarray, modulus: np.ndarray) -> tuple[np.ndarray, float]:
    """Replace the far-field modulus by the measured one; return the *change* and the error.

    ``Ψ' − Ψ = Ψ·(A/|Ψ| − 1)``; where ``|Ψ| = 0`` the phase is taken as 0, i.e. ``Ψ' = A``.
    ``spectra`` is overwritten (it becomes the returned change).

    Parameters
    ----------
    spectra : (B, N, N) complex64, ``Ψ = F(P·O_j)``
    modulus : (B, N, N) float32, ``A = √I``

    Returns
    -------
    delta : (B, N, N) complex64, ``Ψ' − Ψ`` (the ``spectra`` array)
    sq_error : float, ``Σ (|Ψ| − A)²`` over the batch
    """
    amp = np.abs(spectra)
    diff = amp - modulus
    sq_error = float(np.vdot(diff.ravel(), diff.ravel()))
    nonzero = amp > 0
    ratio = np.divide(modulus, amp, out=np.zeros_like(amp), where=nonzero)
    ratio -= 1.0
    spectra *= ratio
    if not nonzero.all():
        zero = ~nonzero
        spectra[zero] = modulus[zero]
    return spectra, sq_error
