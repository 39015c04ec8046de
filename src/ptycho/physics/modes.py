"""Mixed-state probes: ``K`` mutually incoherent modes ``(K, N, N)`` in √counts (docs/simulation.md#probe-modes).

The counts a mixed state gives are the incoherent sum ``Σ_k |F(P_k·O)|²``
(:mod:`ptycho.physics.operators`), so only the summed power ``Σ_k Σ|P_k|²`` is physical (the
photon gauge, docs/conventions.md#photon-gauge) and any unitary mixing of the modes gives the same
counts. These helpers are NumPy only: shape checks, powers, the orthogonalisation the iterative
engines use to fix that mixing freedom, and the recipe ``simulate`` derives modes from one probe
with (:func:`derive_modes`).
"""

from __future__ import annotations

import numpy as np

from ptycho.config.physics import DEFAULT_MODE_POWER_RATIO, MAX_PROBE_MODES
from ptycho.physics.operators.geometry import check_probe_shape

__all__ = ["as_modes", "derive_modes", "mode_powers", "n_modes", "orthogonalise_modes", "resize_modes",
           "summed_intensity"]


def n_modes(probe: np.ndarray) -> int:
    """1 for an ``(N, N)`` probe, ``K`` for ``(K, N, N)`` (ValueError for other shapes, ``K = 0``)."""
    return max(1, check_probe_shape(np.shape(probe)))


def as_modes(probe: np.ndarray) -> np.ndarray:
    """The probe as ``(K, N, N)`` (a view; an ``(N, N)`` probe is one mode)."""
    probe = np.asarray(probe)
    return probe[None] if check_probe_shape(probe.shape) == 0 else probe


def mode_powers(probe: np.ndarray) -> np.ndarray:
    """``(K,)`` float64: ``Σ|P_k|²`` of each mode, photons."""
    return np.sum(np.abs(as_modes(probe).astype(np.complex128)) ** 2, axis=(-2, -1))


def summed_intensity(probe: np.ndarray) -> np.ndarray:
    """``(N, N)`` ``Σ_k |P_k|²``, what the specimen sees (photons per pixel), in the probe's
    precision (float32 for complex64: an ``(N, N)`` probe gives exactly ``np.abs(P)**2``)."""
    probe = np.asarray(probe)
    intensity = np.abs(probe) ** 2
    return intensity if probe.ndim == 2 else intensity.sum(axis=0)


def orthogonalise_modes(probe: np.ndarray) -> np.ndarray:
    """The same mixed state as orthogonal modes in decreasing power.

    The singular value decomposition of the ``(K, N²)`` mode matrix ``A = U S Vᴴ`` gives the modes
    ``Uᴴ A``: a unitary mixing of the input, so ``Σ_k |P_k|²`` (and every count the probe predicts)
    is unchanged, while the modes become orthogonal and sorted, the form that makes their power
    fractions meaningful. A ``(1, N, N)`` or ``(N, N)`` probe is returned as it is.

    Parameters
    ----------
    probe : (K, N, N) complex

    Returns
    -------
    (K, N, N) complex64
    """
    probe = np.asarray(probe)
    if probe.ndim == 2 or probe.shape[0] == 1:
        return probe
    K, N, _ = probe.shape
    flat = probe.reshape(K, N * N).astype(np.complex128)
    u, _, _ = np.linalg.svd(flat, full_matrices=False)  # singular values come sorted, largest first
    return (u.conj().T @ flat).reshape(K, N, N).astype(np.complex64)


def derive_modes(base: np.ndarray, K: int, power_ratio: float) -> np.ndarray:
    """``K`` incoherent modes made from one probe, summed power that of ``base``.

    Recipe (deterministic): mode 0 is ``base``; mode ``k ≥ 1`` is ``base`` times the ``k``-th
    monomial ``u^a v^b`` of total degree 1, 2, 3 (``u, v, u², uv, v², u³, …``) in the coordinates
    ``u = (x − x̄)/σ``, ``v = (y − ȳ)/σ`` centred on the probe's intensity centroid and scaled by
    its RMS radius ``σ`` — the low-order modes of a partially coherent beam, which share the
    probe's support — each orthogonalised against the modes before it (Gram–Schmidt). Mode ``k``
    then carries the fraction ``r^k / Σ_j r^j`` of the power (``r = power_ratio``, a geometric
    decay), so ``Σ_k Σ|P_k|² = Σ|base|²``.

    Parameters
    ----------
    base : (N, N) complex
    K : int, 1 … ``MAX_PROBE_MODES`` (10: the monomials of degree ≤ 3 after the base probe)
    power_ratio : float in (0, 1]
        Power of mode ``k + 1`` over that of mode ``k``.

    Returns
    -------
    (K, N, N) complex64, orthogonal modes in decreasing power.

    Raises
    ------
    ValueError
        ``K`` outside 1 … MAX_PROBE_MODES, a ratio outside (0, 1], or a probe without energy.
    """
    base = np.asarray(base, np.complex128)
    if not 1 <= K <= MAX_PROBE_MODES:
        raise ValueError(f"can derive 1 … {MAX_PROBE_MODES} probe modes; got {K}")
    if not 0 < power_ratio <= 1:
        raise ValueError(f"the mode power ratio must lie in (0, 1]; got {power_ratio}")
    intensity = np.abs(base) ** 2
    total = float(intensity.sum())
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the base probe has no energy")
    N = base.shape[-1]
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    cx, cy = float((xx * intensity).sum() / total), float((yy * intensity).sum() / total)
    sigma = float(np.sqrt((((xx - cx) ** 2 + (yy - cy) ** 2) * intensity).sum() / total)) or 1.0
    u, v = (xx - cx) / sigma, (yy - cy) / sigma
    monomials = [(a, d - a) for d in (1, 2, 3) for a in range(d, -1, -1)]
    modes = [base / np.sqrt(total)]
    for a, b in monomials[: K - 1]:
        mode = base * u**a * v**b
        for previous in modes:  # Gram–Schmidt, so the fractions are those of orthogonal modes
            mode = mode - np.vdot(previous, mode) * previous
        modes.append(mode / np.linalg.norm(mode))
    fractions = power_ratio ** np.arange(K, dtype=np.float64)
    fractions /= fractions.sum()
    return np.stack([m * np.sqrt(f * total) for m, f in zip(modes, fractions)]).astype(np.complex64)


def resize_modes(probe: np.ndarray, K: int, power_ratio: float = DEFAULT_MODE_POWER_RATIO) -> np.ndarray:
    """The probe with ``K`` modes, summed power unchanged: a starting point for reconstructing a
    mixed state.

    The modes are orthogonalised first; fewer than the probe has keeps the strongest, more adds the
    modes :func:`derive_modes` makes from the strongest (power ratio ``power_ratio``), the result
    orthogonalised again. ``K = 1`` gives an ``(N, N)`` probe; the probe's own number of modes
    gives it back unchanged.

    Returns
    -------
    (N, N) for ``K = 1``, else (K, N, N) complex64
    """
    have = n_modes(probe)
    if K == have:
        return np.asarray(probe)
    total = float(mode_powers(probe).sum())
    modes = orthogonalise_modes(as_modes(probe)).astype(np.complex64)
    if K < have:
        modes = modes[:K]
    else:
        derived = derive_modes(modes[0], K - have + 1, power_ratio)  # its mode j: r^j of its mode 0's power
        extra = derived[1:] * np.sqrt(mode_powers(modes[0])[0] / mode_powers(derived[0])[0])
        modes = orthogonalise_modes(np.concatenate([modes, extra.astype(np.complex64)]))
    modes = (modes * np.sqrt(total / mode_powers(modes).sum())).astype(np.complex64)
    return modes[0] if K == 1 else modes
