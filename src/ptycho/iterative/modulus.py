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
    On invalid pixels the wave keeps its predicted modulus (``Ψ' = Ψ``, as pty-chi and tike do) and
    the error leaves them out, so nothing recorded there — however absurd — enters the result.
    ``spectra`` is overwritten (it becomes the returned change).

    Parameters
    ----------
    spectra : (B, N, N) complex64, ``Ψ = F(P·O_j)``
    modulus : (B, N, N) float32, ``A = √I``
    valid : (N, N) bool, optional
        Measured pixels in the same (unshifted) layout (:func:`fft_valid`); default all.

    Returns
    -------
    delta : (B, N, N) complex64, ``Ψ' − Ψ`` (the ``spectra`` array)
    sq_error : float, ``Σ (|Ψ| − A)²`` over the batch
    """
    amp = np.abs(spectra)
    diff = amp - modulus
    if valid is not None:
        diff = np.where(valid, diff, np.float32(0))
    sq_error = float(np.vdot(diff.ravel(), diff.ravel()))
    nonzero = amp > 0
    ratio = np.divide(modulus, amp, out=np.zeros_like(amp), where=nonzero)
    ratio -= 1.0
    if valid is not None:
        ratio = np.where(valid, ratio, np.float32(0))
        nonzero |= ~valid
    spectra *= ratio
    if not nonzero.all():
        zero = ~nonzero
        spectra[zero] = modulus[zero]
    return spectra, sq_error
