"""The Fourier-modulus constraint of the iterative engines, in the unshifted FFT layout of
:func:`ptycho.physics.operators.numpy_ops.farfield`.

Shapes: ``M`` patterns (``B`` in a minibatch), ``N`` pattern side.
"""

from __future__ import annotations

import numpy as np

from ptycho.physics.operators.numpy_ops import to_fft_layout


def measured_modulus(counts: np.ndarray) -> np.ndarray:
    """``√counts`` of DC-centred patterns, moved to the unshifted FFT layout.

    Parameters
    ----------
    counts : (M, N, N) float, DC-centred (fftshifted) photon counts

    Returns
    -------
    (M, N, N) float32, ``|F(P·O)|`` as :func:`~ptycho.physics.operators.numpy_ops.farfield`
    computes it.
    """
    return to_fft_layout(np.sqrt(np.maximum(np.asarray(counts, np.float32), 0.0)))


def fft_valid(mask: np.ndarray | None) -> np.ndarray | None:
    """A DC-centred ``(N, N)`` valid-pixel mask in the unshifted layout of the moduli (or None)."""
    return None if mask is None else to_fft_layout(np.asarray(mask, bool))


def modulus_correction(spectra: np.ndarray, modulus: np.ndarray,
                       valid: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Replace the far-field modulus by the measured one; return the *change* and the error.

    ``Ψ' − Ψ = Ψ·(A/|Ψ| − 1)``; where ``|Ψ| = 0`` the phase is taken as 0, i.e. ``Ψ' = A``.
    With probe modes ``Ψ_k`` the constraint is on the summed intensity: ``|Ψ| = √Σ_k|Ψ_k|²`` and
    every mode is scaled by the same ratio ``A/|Ψ|`` (Thibault & Menzel 2013), so the modes keep
    their relative weights and the new summed intensity is ``A²``.
    On invalid pixels the wave keeps its predicted modulus (``Ψ' = Ψ``, as pty-chi and tike do) and
    the error leaves them out, so nothing recorded there — however absurd — enters the result.
    ``spectra`` is overwritten (it becomes the returned change).

    Parameters
    ----------
    spectra : (B, N, N) complex64, ``Ψ = F(P·O_j)``; or (B, K, N, N), ``Ψ_k = F(P_k·O_j)``
    modulus : (B, N, N) float32, ``A = √I``
    valid : (N, N) bool, optional
        Measured pixels in the same (unshifted) layout (:func:`fft_valid`); default all.

    Returns
    -------
    delta : the shape of ``spectra``, complex64, ``Ψ' − Ψ`` (the ``spectra`` array)
    sq_error : float, ``Σ (|Ψ| − A)²`` over the batch
    """
    amp = _summed_modulus(spectra)
    sq_error = _squared_misfit(amp, modulus, valid)
    nonzero = amp > 0
    ratio = np.divide(modulus, amp, out=np.zeros_like(amp), where=nonzero)
    ratio -= 1.0
    if valid is not None:
        ratio = np.where(valid, ratio, np.float32(0))
        nonzero |= ~valid
    first = spectra if spectra.ndim == 3 else spectra[:, 0]  # a wave without light gets A in mode 0
    spectra *= ratio if spectra.ndim == 3 else ratio[:, None]
    if not nonzero.all():
        zero = ~nonzero
        first[zero] = modulus[zero]
    return spectra, sq_error


def modulus_misfit(spectra: np.ndarray, modulus: np.ndarray, valid: np.ndarray | None = None) -> float:
    """``Σ (|Ψ| − A)²`` over the batch and the ``valid`` pixels, the error
    :func:`modulus_correction` reports, without changing ``spectra`` (shapes as there)."""
    return _squared_misfit(_summed_modulus(spectra), modulus, valid)


def _squared_misfit(amp: np.ndarray, modulus: np.ndarray, valid: np.ndarray | None) -> float:
    diff = amp - modulus
    if valid is not None:
        diff = np.where(valid, diff, np.float32(0))
    return float(np.vdot(diff.ravel(), diff.ravel()))


def _summed_modulus(spectra: np.ndarray) -> np.ndarray:
    """``|Ψ|`` of ``(B, N, N)`` waves, ``√Σ_k|Ψ_k|²`` of ``(B, K, N, N)`` modes (float32); one mode
    takes the coherent path, so a ``(1, N, N)`` probe gives the numbers of its ``(N, N)`` mode."""
    if spectra.ndim == 3:
        return np.abs(spectra)
    if spectra.shape[1] == 1:
        return np.abs(spectra[:, 0])
    return np.sqrt(np.sum(spectra.real**2 + spectra.imag**2, axis=1))
