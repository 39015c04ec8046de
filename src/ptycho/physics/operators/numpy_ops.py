"""The NumPy backend of :mod:`ptycho.physics.operators`.

Two layers:

* the interface shared with the TensorFlow backend (:func:`extract_patches`, :func:`place_patches`,
  :func:`propagate`, :func:`back_propagate`, :func:`farfield_intensity`,
  :func:`diffraction_intensity`), batched over images, which the contract test runs against both;
* the fast path it is built on, for callers that make many small calls on one canvas (the
  iterative engines, the streamed global estimate, stitch): windows precomputed once per scan
  (:class:`~ptycho.physics.operators.geometry.Windows`), :func:`extract` / :func:`place` on them,
  and the FFT pair :func:`farfield` / :func:`backfield` in the *unshifted* layout (DC at
  ``[0, 0]``), so that measured DC-centred data is moved once (:func:`to_fft_layout`) instead of
  shifting every wave on every iteration.

Why a NumPy backend at all: an iterative solver makes one call per minibatch whose inputs change
every call; TensorFlow's per-call dispatch and its complex ↔ real splitting of ``scatter_nd`` cost
more than the arithmetic there, while NumPy views, separable interpolation and block-wise
accumulation are cheap and deterministic (a fixed summation order, in double precision), and
need no TensorFlow (``benchmarks/RESULTS.md`` has the measurements). ``scipy.fft`` keeps single
precision single.

Windows must lie inside the canvas: this backend raises ``ValueError`` otherwise, where the
TensorFlow backend (inside a graph) clamps. The per-canvas :func:`extract` / :func:`place` need
the whole ``(N+1)×(N+1)`` bilinear block inside; the batched interface allows for the block of a
whole-pixel window flush with the last row or column, whose extra row and column weigh 0.

Shapes: ``B`` windows (or images), ``K`` windows per image, ``N`` window side, ``(H, W)`` canvas.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ptycho.physics.operators.geometry import Windows, check_inside, check_probe_shape, window_geometry

FFT_WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""Most threads a batched FFT uses (scipy.fft splits the batch; the result does not depend on it)."""
FFT_THREADED_MIN = 1 << 18
"""Batches smaller than this many elements run on one thread: for minibatch-sized FFTs on a
2-core machine, starting threads costs more than it saves."""


def _workers(array: np.ndarray) -> int:
    return FFT_WORKERS if array.size >= FFT_THREADED_MIN else 1


def _blocks(canvas: np.ndarray, windows: Windows) -> np.ndarray:
    """``(B, N+1, N+1)`` copies of the whole-pixel blocks (raises if a block leaves the canvas)."""
    check_inside(windows, canvas.shape)
    n = windows.N + 1
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


def extract_with_gradients(canvas: np.ndarray, windows: Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`extract` and its exact derivatives with respect to the window centre.

    The bilinear window is linear in each fraction, so ``∂/∂x`` is the same interpolation with the
    ``x`` weight replaced by the column difference of the block (and likewise in ``y``): the
    derivative of the model itself, which is what a least-squares position update needs.

    Parameters
    ----------
    canvas : (H, W) complex64
    windows : Windows (B of them)

    Returns
    -------
    patches, d_dx, d_dy : (B, N, N) each, the dtype of ``canvas``; per pixel of object per pixel
        of shift.
    """
    block = _blocks(canvas, windows)
    fy = windows.fy[:, None, None].astype(canvas.real.dtype)
    fx = windows.fx[:, None, None].astype(canvas.real.dtype)
    rows = block[:, :-1, :] + fy * (block[:, 1:, :] - block[:, :-1, :])  # (B, N, N+1)
    d_dx = rows[:, :, 1:] - rows[:, :, :-1]
    cols = block[:, :, :-1] + fx * (block[:, :, 1:] - block[:, :, :-1])  # (B, N+1, N)
    d_dy = cols[:, 1:, :] - cols[:, :-1, :]
    return rows[:, :, :-1] + fx * d_dx, d_dx, d_dy


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
    n = windows.N + 1
    check_inside(windows, shape)
    blocks = spread(patches, windows)
    canvas = np.zeros(shape, np.complex128 if np.iscomplexobj(blocks) else np.float64)
    for block, r, c in zip(blocks, windows.iy.tolist(), windows.ix.tolist()):
        canvas[r:r + n, c:c + n] += block
    return canvas


def farfield(waves: np.ndarray) -> np.ndarray:
    """Unitary 2-D DFT over the last two axes in the unshifted layout (DC at ``[0, 0]``). May
    overwrite ``waves``."""
    import scipy.fft  # here, not at module level: the light commands must not load SciPy

    return scipy.fft.fft2(waves, norm="ortho", workers=_workers(waves), overwrite_x=True)


def backfield(spectra: np.ndarray) -> np.ndarray:
    """Inverse of :func:`farfield`. May overwrite ``spectra``."""
    import scipy.fft

    return scipy.fft.ifft2(spectra, norm="ortho", workers=_workers(spectra), overwrite_x=True)


def to_fft_layout(centred: np.ndarray) -> np.ndarray:
    """DC-centred (detector) layout → the unshifted layout of :func:`farfield`, last two axes; a
    contiguous copy."""
    return np.ascontiguousarray(np.fft.ifftshift(centred, axes=(-2, -1)))


# -- the interface shared with the TensorFlow backend -------------------------------------------

# The batched functions below give each image one spare row and column past its last pixel: a
# whole-pixel window flush with the bottom or right edge has a bilinear block one pixel larger
# than the image, whose extra row and column carry weight 0. Windows that really leave an image
# still raise.


def extract_patches(images: Any, x: Any, y: Any, N: int) -> np.ndarray:
    """Read ``N×N`` windows centred at ``(x, y)`` from each image.

    Parameters
    ----------
    images : (B, H, W) complex64
    x, y : (B, K) float
        Window centres in pixels of ``images``.
    N : int

    Returns
    -------
    (B, K, N, N), the dtype of ``images``.
    """
    images = np.pad(np.asarray(images), ((0, 0), (0, 1), (0, 1)))  # the spare row and column
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return np.stack([extract(image, window_geometry(xb, yb, N)) for image, xb, yb in zip(images, x, y)])


def place_patches(patches: Any, x: Any, y: Any, H: int, W: int) -> np.ndarray:
    """Adjoint of :func:`extract_patches`: add each window into an ``H×W`` canvas per image.

    Parameters
    ----------
    patches : (B, K, N, N) complex
    x, y : (B, K) float
    H, W : int

    Returns
    -------
    (B, H, W) complex128, the sum of every window's bilinear footprint.
    """
    patches = np.asarray(patches)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    N = patches.shape[-1]
    return np.stack([place(p, window_geometry(xb, yb, N), (H + 1, W + 1))[:H, :W] for p, xb, yb in zip(patches, x, y)])


def propagate(exit_waves: Any) -> np.ndarray:
    """Far-field wave: unitary 2-D DFT, DC-centred (fftshifted). ``(..., N, N)`` complex."""
    return np.fft.fftshift(farfield(np.array(exit_waves)), axes=(-2, -1))


def back_propagate(farfield_waves: Any) -> np.ndarray:
    """Inverse of :func:`propagate`: DC-centred far-field wave → exit wave."""
    return backfield(to_fft_layout(farfield_waves))


def farfield_intensity(exit_waves: Any) -> np.ndarray:
    """``|F(ψ)|²``, unitary, DC-centred: ``(..., N, N)`` complex → ``(..., N, N)`` real (Parseval:
    the sum over the last two axes equals ``Σ|ψ|²``)."""
    spectrum = propagate(exit_waves)
    return spectrum.real**2 + spectrum.imag**2


def diffraction_intensity(object_patches: Any, probe: Any) -> np.ndarray:
    """Expected counts of object windows: illuminate by ``probe``, propagate, square (and sum the
    intensities of a mixed-state probe's modes).

    Parameters
    ----------
    object_patches : (..., N, N) complex
    probe : (N, N) or (K, N, N) complex, √counts

    Returns
    -------
    (..., N, N) float expected counts.
    """
    probe = np.asarray(probe)
    if check_probe_shape(probe.shape) == 0:
        return farfield_intensity(np.asarray(object_patches) * probe)
    return farfield_intensity(np.asarray(object_patches)[..., None, :, :] * probe).sum(axis=-3)
