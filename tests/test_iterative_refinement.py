"""The iterative engines with mixed-state probes and position refinement
(docs/reconstruction.md#mixed-state-reconstruction, docs/positions.md), on small noise-free scans
simulated with the NumPy operators (N=32)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptycho.config.physics import ProbeConfig
from ptycho.iterative.engines import reconstruct_arrays
from ptycho.iterative.positions import least_squares_shifts, zero_mean_within_bound
from ptycho.physics.modes import derive_modes, mode_powers, resize_modes
from ptycho.physics.operators import numpy_ops
from ptycho.physics.operators.geometry import window_geometry
from ptycho.physics.probe import ideal_probe, normalise_probe

N, SIZE, STEP = 32, 88, 6.0
PHOTONS = 1e6
SIGMA_PX = 0.5
"""Standard deviation of the position errors the solver is not told."""
MEAN_ATOL = 1e-9


def rms_error(x, y, x_true, y_true):
    """Radial RMS of the position error, its mean removed (a common shift is the object's)."""
    ex, ey = x - x_true, y - y_true
    return float(np.sqrt(np.mean((ex - ex.mean()) ** 2 + (ey - ey.mean()) ** 2)))


@pytest.fixture(scope="module")
def scan():
    """A smooth random specimen, a defocused disk probe, a jittered raster of 64 positions."""
    rng = np.random.default_rng(0)
    amp, phase = (ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 1.5) for _ in range(2))
    obj = ((0.8 + 0.1 * amp / amp.std()) * np.exp(0.6j * phase / phase.std())).astype(np.complex64)
    probe = normalise_probe(ideal_probe(N, ProbeConfig(diameter_frac=0.6, defocus_rad=6.0)), PHOTONS)
    grid = np.arange(20, SIZE - 20, STEP)
    gx, gy = np.meshgrid(grid, grid)
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    return obj, probe, x, y


def counts_of(obj, probe, x, y):
    patches = numpy_ops.extract_patches(obj[None], x[None], y[None], N)[0]
    return numpy_ops.diffraction_intensity(patches, probe).astype(np.float32)


def perturbed(x, y, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return x + rng.normal(0, sigma, x.size), y + rng.normal(0, sigma, y.size)


# ----------------------------------------------------------------------------- positions


def test_the_least_squares_shift_of_a_window_is_its_known_small_shift(scan):
    obj, probe, x, y = scan
    shift = np.array([0.04, -0.03])
    at = window_geometry(x, y, N)
    patches, d_dx, d_dy = numpy_ops.extract_with_gradients(obj, at)
    moved = numpy_ops.extract(obj, window_geometry(x + shift[0], y + shift[1], N))
    found = least_squares_shifts(probe * (moved - patches), probe, d_dx, d_dy)
    np.testing.assert_allclose(np.median(found, axis=0), shift, atol=2e-3)


def test_zero_mean_within_bound_is_exact_and_plain_centring_when_nothing_clips():
    rng = np.random.default_rng(2)
    offsets = rng.normal(0.4, 1.0, 200)
    free = zero_mean_within_bound(offsets, 10.0)
    np.testing.assert_allclose(free, offsets - offsets.mean(), atol=1e-12)
    held = zero_mean_within_bound(offsets, 0.5)
    assert abs(held.mean()) < MEAN_ATOL and np.abs(held).max() <= 0.5
    assert np.sum(np.abs(held) == 0.5) > 10  # the bound is active


def test_refinement_recovers_known_subpixel_offsets_with_zero_mean_shift(scan):
    obj, probe, x_true, y_true = scan
    counts = counts_of(obj, probe, x_true, y_true)
    x, y = perturbed(x_true, y_true, SIGMA_PX)
    before = rms_error(x, y, x_true, y_true)
    fixed = reconstruct_arrays(counts, x, y, probe, object_shape=(SIZE, SIZE), iterations=40)
    np.testing.assert_array_equal(fixed.x, x)  # nothing moves unless asked
    run = reconstruct_arrays(counts, x, y, probe, object_shape=(SIZE, SIZE), iterations=40, refine_positions=True,
                             position_start=5)
    after = rms_error(run.x, run.y, x_true, y_true)
    assert after < 0.2 * before, (before, after)
    assert abs(np.mean(run.x - x)) < MEAN_ATOL and abs(np.mean(run.y - y)) < MEAN_ATOL
    assert run.errors[-1] < 0.1 * fixed.errors[-1]  # the data are explained far better


def test_refined_offsets_stay_within_their_bound_and_wait_for_the_start(scan):
    obj, probe, x_true, y_true = scan
    counts = counts_of(obj, probe, x_true, y_true)
    x, y = perturbed(x_true, y_true, 0.7, seed=3)
    bound = 0.3
    run = reconstruct_arrays(counts, x, y, probe, object_shape=(SIZE, SIZE), iterations=20, refine_positions=True,
                             position_start=5, position_max_shift_px=bound)
    offsets = np.concatenate([run.x - x, run.y - y])
    assert np.abs(offsets).max() <= bound + 1e-12
    assert np.sum(np.abs(offsets) > bound - 1e-6) > 5  # some positions wanted to move further
    assert abs(np.mean(run.x - x)) < MEAN_ATOL
    waiting = reconstruct_arrays(counts, x, y, probe, object_shape=(SIZE, SIZE), iterations=5, refine_positions=True,
                                 position_start=5)
    np.testing.assert_array_equal(waiting.x, x)


# ----------------------------------------------------------------------------- mixed states


def test_a_one_mode_stack_gives_the_coherent_reconstruction_bit_for_bit(scan):
    obj, probe, x, y = scan
    counts = counts_of(obj, probe, x, y)
    options = dict(object_shape=(SIZE, SIZE), iterations=3, probe_update=True, batch_size=5)
    plain = reconstruct_arrays(counts, x, y, probe, **options)
    stacked = reconstruct_arrays(counts, x, y, probe[None], **options)
    np.testing.assert_array_equal(stacked.object, plain.object)
    np.testing.assert_array_equal(stacked.probe[0], plain.probe)
    np.testing.assert_array_equal(stacked.errors, plain.errors)


def test_two_modes_fit_two_mode_data_far_better_than_one(scan):
    obj, probe, x, y = scan
    truth = derive_modes(probe, 2, 0.3)
    counts = counts_of(obj, truth, x, y)
    start = truth[0] * np.sqrt(PHOTONS / mode_powers(truth[0])[0])  # the dominant mode at the full power
    options = dict(object_shape=(SIZE, SIZE), iterations=40, probe_update=True)
    one = reconstruct_arrays(counts, x, y, start, **options)
    two = reconstruct_arrays(counts, x, y, start, probe_modes=2, **options)
    assert one.probe.shape == (N, N) and two.probe.shape == (2, N, N)
    assert two.errors[-1] < 0.1 * one.errors[-1], (one.errors[-1], two.errors[-1])
    assert mode_powers(two.probe).sum() == pytest.approx(PHOTONS, rel=1e-4)  # the gauge is the summed power
    fractions = mode_powers(two.probe) / PHOTONS
    assert fractions[0] > fractions[1] > 0.05  # sorted, and the second mode carries real power
    overlap = abs(np.vdot(two.probe[0], truth[0])) / (np.linalg.norm(two.probe[0]) * np.linalg.norm(truth[0]))
    assert overlap > 0.98


def test_resizing_modes_keeps_the_power_and_the_strongest_mode(scan):
    _, probe, _, _ = scan
    truth = derive_modes(probe, 3, 0.3)
    one = resize_modes(truth, 1)
    assert one.shape == (N, N) and mode_powers(one)[0] == pytest.approx(PHOTONS, rel=1e-5)
    four = resize_modes(truth, 4)
    assert four.shape == (4, N, N) and mode_powers(four).sum() == pytest.approx(PHOTONS, rel=1e-5)
    assert resize_modes(truth, 3) is truth or np.array_equal(resize_modes(truth, 3), truth)
