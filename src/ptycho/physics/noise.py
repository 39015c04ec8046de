"""Poisson noise by photon budget (its generators come from :func:`ptycho.seeding.seed_stream`)."""

from __future__ import annotations

import numpy as np

NOISE_SPLIT = 2  # each chunk's noise is drawn in this many independent, fixed slices


def poisson_counts(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw photon counts with mean ``expected`` (float32 out, integer valued)."""
    return rng.poisson(np.maximum(expected, 0.0).astype(np.float64)).astype(np.float32)


def chunk_noise_slices(n: int) -> list[slice]:
    """The fixed slices of a chunk of ``n`` patterns that get their own noise stream."""
    bounds = np.linspace(0, n, NOISE_SPLIT + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
