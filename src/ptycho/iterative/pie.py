"""The ePIE and rPIE update, minibatch by minibatch (driven by :mod:`ptycho.iterative.engines`).

**Model.** Pattern ``j`` is ``I_j = |F(P · E_j O)|²`` with ``E_j`` the bilinear window extraction
at probe centre ``(x_j, y_j)`` and ``F`` the unitary DFT — the NumPy backend of
:mod:`ptycho.physics.operators`, whose TensorFlow backend ``ptycho simulate`` uses (one geometry,
one FFT convention, one contract test for both) — and ``P`` the probe in √counts. The measured
modulus is ``A_j = √I_j``.

**One minibatch** ``S`` of ``B`` positions (all from the current estimates)::

    ψ_j  = P · E_j O                                 exit waves
    Δψ_j = F⁻¹[ F ψ_j · (A_j / |F ψ_j| − 1) ]        modulus projection minus the wave
    num  = Σ_j E_jᵀ (P̄ · Δψ_j)                       object gradient, placed by the adjoint
    D    = Σ_j E_jᵀ |P|²                             summed illumination of the batch
    rPIE: O += num / ((1 − α)·D + α·max D)
    ePIE: O += α · num / max D

and, with ``probe_update``, from the same ``ψ``::

    rPIE: P += Σ_j Ō_j Δψ_j / ((1 − β)·Σ_j|O_j|² + β·max Σ_j|O_j|²)
    ePIE: P += β · Σ_j Ō_j Δψ_j / max Σ_j|O_j|²          (O_j = E_j O)

**Mixed states** (a probe ``(K, N, N)``, docs/reconstruction.md#mixed-state-reconstruction): one
exit wave per mode, ``ψ_jk = P_k · E_j O``; the modulus constraint acts on the summed intensity,
every mode's wave scaled by the same ratio (:func:`~ptycho.iterative.modulus.modulus_correction`);
the object step sums ``P̄_k Δψ_jk`` and ``|P_k|²`` over modes, and each mode is updated with its own
``Σ_j Ō_j Δψ_jk`` over the shared denominator. With ``orthogonalise_modes`` the modes are made
orthogonal after every iteration (a unitary mixing: the same counts). An ``(N, N)`` probe runs the
coherent formulas above unchanged; a ``(1, N, N)`` probe gives the same numbers.

**Positions** (``refine_positions``, :mod:`ptycho.iterative.positions`): from the same ``Δψ``, a
least-squares sub-pixel shift of each window of the batch, applied after the batch's update.

With ``B = 1`` these are exactly serial ePIE (Maiden & Rodenburg 2009) and rPIE (Maiden, Johnson
& Li 2017). For ``B > 1`` overlapping windows of the batch are *summed* in the numerator and in
the denominator, so where windows overlap the step is their illumination-weighted average rather
than ``B`` stacked steps (stable for any ``B``; ``B = M`` is a parallel, DM-like gradient step).
The probe power is held at the dataset's ``Σ|P|²`` (the photon gauge) after each probe update,
with the inverse factor moved to the object, so amplitudes stay absolute.
"""

from __future__ import annotations

import math

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.iterative.modulus import modulus_correction
from ptycho.iterative.positions import PositionState, least_squares_shifts
from ptycho.physics.modes import orthogonalise_modes, summed_intensity
from ptycho.physics.operators.geometry import Windows, block_extent
from ptycho.physics.operators.numpy_ops import backfield, extract, extract_with_gradients, farfield, place
from ptycho.physics.probe import probe_energy

__all__ = ["hold_probe_power", "minibatch_step", "pie_iteration"]


def pie_iteration(obj: np.ndarray, probe: np.ndarray, probe_power: float, windows: Windows, modulus: np.ndarray,
                  valid: np.ndarray | None, order: np.ndarray, cfg: IterativeConfig,
                  positions: PositionState | None = None) -> float:
    """One pass over every position in ``order``, minibatch by minibatch, updating ``obj`` (and
    ``probe``: its modes orthogonalised with ``orthogonalise_modes``, renormalised to
    ``probe_power``) in place; returns ``Σ(|Ψ| − A)²``. With ``positions``, each batch's positions
    move by their least-squares shifts, and the offsets are held at zero mean at the end."""
    sq_error = 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite: the caller raises
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            shifts = None if positions is None else np.empty((len(batch), 2))
            sq_error += minibatch_step(obj, probe, windows.take(batch), modulus[batch], cfg, valid, shifts)
            if positions is not None:
                positions.move(batch, shifts)
    if positions is not None:
        positions.constrain()
    hold_probe_power(obj, probe, probe_power, cfg)
    return sq_error


def minibatch_step(obj: np.ndarray, probe: np.ndarray, windows: Windows, modulus: np.ndarray, cfg: IterativeConfig,
                   valid: np.ndarray | None = None, shifts: np.ndarray | None = None) -> float:
    """Update ``obj`` (and ``probe``) in place from one minibatch; return its ``Σ(|Ψ| − A)²``
    (over ``valid`` pixels, unshifted layout, when given: :func:`~ptycho.iterative.modulus.fft_valid`).

    ``probe`` is ``(N, N)`` or ``(K, N, N)`` modes. With ``shifts`` (a ``(B, 2)`` array), the
    least-squares position shift ``(δx, δy)`` of each window is written there (from the waves
    before this update, :func:`~ptycho.iterative.positions.least_squares_shifts`). The object step
    is formed on the sub-canvas the batch's windows span (a view of ``obj``).
    """
    if shifts is None:
        patches = extract(obj, windows)  # (B, N, N) O_j
    else:
        patches, d_dx, d_dy = extract_with_gradients(obj, windows)
    modes = probe.ndim == 3
    spectra = farfield(patches[:, None] * probe if modes else patches * probe)
    delta, sq_error = modulus_correction(spectra, modulus, valid)
    dpsi = backfield(delta)  # (B, [K,] N, N) Δψ_j = ψ'_j − ψ_j
    if shifts is not None:
        shifts[...] = least_squares_shifts(dpsi, probe, d_dx, d_dy)
    r0, r1, c0, c1 = block_extent(windows)
    local = windows.shifted(-r0, -c0)
    weighted = np.conj(probe) * dpsi
    num = place(weighted.sum(axis=1) if modes else weighted, local, (r1 - r0, c1 - c0))
    den = place(np.broadcast_to(summed_intensity(probe), patches.shape), local, (r1 - r0, c1 - c0))
    den_max = float(den.max())
    if cfg.engine == "rpie":
        step = num / ((1.0 - cfg.alpha) * den + cfg.alpha * den_max)
    else:
        step = num * (cfg.alpha / den_max)
    if cfg.probe_update:
        pnum = np.sum(np.conj(patches[:, None] if modes else patches) * dpsi, axis=0)
        pden = np.sum(np.abs(patches) ** 2, axis=0)
        pmax = float(pden.max())
        if cfg.engine == "rpie":
            probe += (pnum / ((1.0 - cfg.beta) * pden + cfg.beta * pmax)).astype(np.complex64)
        else:
            probe += (pnum * (cfg.beta / pmax)).astype(np.complex64)
    obj[r0:r1, c0:c1] += step.astype(np.complex64)
    return sq_error


def hold_probe_power(obj: np.ndarray, probe: np.ndarray, probe_power: float, cfg: IterativeConfig) -> None:
    """With ``probe_update``: the modes orthogonalised (``orthogonalise_modes``, the counts
    unchanged), the probe back to the photon gauge, the inverse factor on the object."""
    if cfg.probe_update:
        if cfg.orthogonalise_modes and probe.ndim == 3:
            probe[...] = orthogonalise_modes(probe)
        scale = math.sqrt(probe_power / max(probe_energy(probe), 1e-300))
        probe *= np.float32(scale)
        obj *= np.float32(1.0 / scale)
