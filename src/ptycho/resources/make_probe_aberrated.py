"""Generate ``probe_aberrated.npz``: the packaged structured, aberrated probe (run once; deterministic).

    python src/ptycho/resources/make_probe_aberrated.py

The probe imitates what a defocused Fresnel zone plate with a central stop puts on a sample: a
ring-shaped (annular) beam whose wavefront carries defocus, astigmatism, coma and a little
trefoil, with Fresnel fringes at its edges and a few per cent of smooth amplitude structure.

Construction on an ``N0 = 64`` grid, window centre at ``((N0−1)/2, (N0−1)/2)`` (docs/conventions.md#windows):

1. Annular aperture: outer diameter ``OUTER_FRAC·N0``, central stop ``INNER_FRAC·N0``, edges
   smoothed over ``EDGE_PX`` pixels (erf).
2. Wavefront ``W(ρ, θ)`` (radians, ρ = r / outer radius) as a sum of Zernike terms:
   defocus ``2ρ²−1``, astigmatism ``ρ² cos 2θ``, coma ``(3ρ³−2ρ) cos θ``, trefoil ``ρ³ cos 3θ``.
3. Short angular-spectrum propagation (Fresnel number set by ``FRESNEL_PX2 = λz/Δx²``) to create
   edge fringes and mix amplitude and phase structure.
4. Smooth amplitude structure: ``1 + STRUCTURE·g`` with ``g`` a unit-variance Gaussian random field
   (seed ``SEED``, blur ``STRUCTURE_SIGMA_PX``), then a soft circular window of radius
   ``WINDOW_FRAC·N0`` so the probe fades out inside the window (no wrap-around).
5. Normalise to ``Σ|P|² = 1``; stored as complex64 under the key ``probe``. The core rescales it
   to the photon budget and resamples it to the pattern size (:mod:`ptycho.physics.packaged_probe`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import erf

N0 = 64
OUTER_FRAC = 0.70
INNER_FRAC = 0.26
EDGE_PX = 1.0
ZERNIKE_RAD = {"defocus": 3.0, "astigmatism": 1.6, "coma": 1.2, "trefoil": 0.5}
FRESNEL_PX2 = 24.0
STRUCTURE = 0.06
STRUCTURE_SIGMA_PX = 3.0
WINDOW_FRAC = 0.44
SEED = 20240601


def make_probe(N: int = N0) -> np.ndarray:
    """The aberrated probe on an ``N×N`` grid (``Σ|P|² = 1``), complex64."""
    c = (N - 1) / 2.0
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    dy, dx = yy - c, xx - c
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)
    outer, inner = OUTER_FRAC * N / 2.0, INNER_FRAC * N / 2.0
    aperture = 0.5 * (1.0 - erf((r - outer) / EDGE_PX)) * 0.5 * (1.0 + erf((r - inner) / EDGE_PX))
    rho = r / outer
    wavefront = (
        ZERNIKE_RAD["defocus"] * (2 * rho**2 - 1)
        + ZERNIKE_RAD["astigmatism"] * rho**2 * np.cos(2 * theta)
        + ZERNIKE_RAD["coma"] * (3 * rho**3 - 2 * rho) * np.cos(theta)
        + ZERNIKE_RAD["trefoil"] * rho**3 * np.cos(3 * theta)
    )
    field = aperture * np.exp(1j * wavefront)
    fy, fx = np.meshgrid(np.fft.fftfreq(N), np.fft.fftfreq(N), indexing="ij")  # cycles per pixel
    transfer = np.exp(-1j * np.pi * FRESNEL_PX2 * (fx**2 + fy**2))  # paraxial free-space propagator
    field = np.fft.ifft2(np.fft.fft2(field) * transfer)
    g = gaussian_filter(np.random.default_rng(SEED).standard_normal((N, N)), STRUCTURE_SIGMA_PX, mode="wrap")
    g /= g.std()
    window = 0.5 * (1.0 - erf((r - WINDOW_FRAC * N) / (2.0 * EDGE_PX)))
    field = field * (1.0 + STRUCTURE * g) * window
    field /= np.sqrt(np.sum(np.abs(field) ** 2))
    return field.astype(np.complex64)


def main() -> None:
    out = Path(__file__).with_name("probe_aberrated.npz")
    probe = make_probe()
    np.savez_compressed(out, probe=probe)
    print(f"wrote {out}: {probe.shape} {probe.dtype}, Σ|P|² = {np.sum(np.abs(probe) ** 2):.6f}")


if __name__ == "__main__":
    main()
