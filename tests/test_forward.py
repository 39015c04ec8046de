"""The forward model of ``simulate`` against physics: Parseval, the photon gauge, shifts and
Poisson statistics (the operators' own contract is tests/test_operators.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.config import ProbeConfig
from ptycho.physics.operators.tf_ops import simulate_patterns
from ptycho.physics.noise import poisson_counts
from ptycho.physics.probe import gaussian_probe, ideal_probe, normalise_probe
from ptycho.seeding import seed_stream

N = 32
RTOL = 1e-5


def _probe(nphotons=1e6, defocus=3.0):
    return normalise_probe(ideal_probe(N, ProbeConfig(defocus_rad=defocus)), nphotons)


def _random_object(size=96, seed=0):
    rng = np.random.default_rng(seed)
    amp = 0.6 + 0.4 * rng.random((size, size))
    phase = rng.uniform(-1, 1, (size, size))
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def _corners_to_centres(corner):
    return np.asarray(corner, dtype=np.float64) + (N - 1) / 2


def test_parseval_counts_equal_exit_wave_energy():
    obj = _random_object()
    x = _corners_to_centres([0, 10, 37, 60])
    y = _corners_to_centres([5, 0, 22, 64])
    probe = _probe()
    counts = simulate_patterns(obj, probe, x, y).numpy()
    for k in range(len(x)):
        r, c = int(y[k] - (N - 1) / 2), int(x[k] - (N - 1) / 2)
        window = obj[r:r + N, c:c + N].astype(np.complex128)
        expected = np.sum(np.abs(probe * window) ** 2)
        assert counts[k].sum(dtype=np.float64) == pytest.approx(expected, rel=RTOL)


def test_photon_budget_unit_object_gives_nphotons_per_pattern():
    probe = _probe(nphotons=1e9)
    assert np.sum(np.abs(probe.astype(np.complex128)) ** 2) == pytest.approx(1e9, rel=RTOL)
    obj = np.ones((80, 80), np.complex64)
    counts = simulate_patterns(obj, probe, np.array([30.2, 40.0]), np.array([33.7, 47.5])).numpy()
    np.testing.assert_allclose(counts.sum(axis=(1, 2), dtype=np.float64), 1e9, rtol=RTOL)


def test_uniform_object_gives_the_probes_own_diffraction():
    probe = _probe()
    phase = np.exp(1j * 0.4).astype(np.complex64)
    obj = np.full((64, 64), phase, np.complex64)
    counts = simulate_patterns(obj, probe, np.array([31.5]), np.array([31.5])).numpy()[0]
    reference = np.fft.fftshift(np.abs(np.fft.fft2(probe.astype(np.complex128), norm="ortho")) ** 2)
    np.testing.assert_allclose(counts, reference, rtol=RTOL, atol=RTOL * reference.max())
    assert np.unravel_index(np.argmax(counts), counts.shape) == (N // 2, N // 2), "DC must be centred"


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, 7), (5, -4)])
def test_integer_shift_of_object_and_scan_gives_identical_patterns(dx, dy):
    big = _random_object(size=120, seed=3)
    obj_a = big[10:110, 10:110]
    obj_b = big[10 - dy:110 - dy, 10 - dx:110 - dx]  # object content moved by (+dx, +dy)
    probe = _probe()
    x = _corners_to_centres([8, 20, 41]) + np.array([0.0, 0.25, 0.5])
    y = _corners_to_centres([12, 30, 50]) + np.array([0.0, 0.75, 0.125])
    a = simulate_patterns(obj_a, probe, x, y).numpy()
    b = simulate_patterns(obj_b, probe, x + dx, y + dy).numpy()
    whole = slice(0, 1)
    np.testing.assert_array_equal(a[whole], b[whole])  # whole-pixel corners: bit identical
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * a.max())


def test_poisson_noise_mean_and_variance_at_100_photons():
    probe = normalise_probe(gaussian_probe(16, ProbeConfig()), 100.0)
    expected = simulate_patterns(np.ones((40, 40), np.complex64), probe, np.array([19.5]), np.array([19.5])).numpy()[0]
    trials = 4000
    counts = poisson_counts(np.broadcast_to(expected, (trials, 16, 16)), seed_stream(0, "noise"))
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    totals = counts.sum(axis=(1, 2))
    assert totals.mean() == pytest.approx(100.0, abs=4 * 10 / np.sqrt(trials))
    assert totals.var() == pytest.approx(100.0, rel=0.1)
    bright = expected > 5
    np.testing.assert_allclose(counts.mean(axis=0)[bright], expected[bright], rtol=0.1)
    np.testing.assert_allclose(counts.var(axis=0)[bright], expected[bright], rtol=0.2)
