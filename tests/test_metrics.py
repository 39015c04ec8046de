"""Tests of the evaluation metrics core: registration, phase alignment, FRC, image metrics, comparison."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from ptycho.errors import DataError
from ptycho.metrics.compare import ComparisonResult, compare_objects
from ptycho.metrics.frc import FRCResult, fourier_ring_correlation
from ptycho.metrics.image import (
    image_metrics,
    legacy_phase_ssim,
    mean_ratio_rescale,
    ms_ssim,
    ms_ssim_scales,
    psnr255,
)
from ptycho.metrics.registration import (
    apply_shift,
    estimate_phase_offset,
    estimate_shift,
    remove_phase_offset,
)

SHIFT_ATOL_PX = 0.05
PHASE_ATOL_RAD = 1e-6
RAMP_ATOL = 1e-6
FRC_SELF_ATOL = 1e-6
FRC_NOISE_MEAN_MAX = 0.1
SKIMAGE_MATCH_ATOL = 1e-12
NEAR_PERFECT_SSIM = 0.99
KNOWN_SHIFT = (1.3, -2.7)


def smooth_complex(shape=(96, 96), seed=0, phase_amplitude_rad=1.0, sigma=3.0):
    """Periodic smooth random object: amplitude in ~[0.4, 1.0], phase within ±phase_amplitude_rad."""
    rng = np.random.default_rng(seed)

    def smooth():
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        return field / np.abs(field).max()

    amplitude = 0.7 + 0.3 * smooth()
    return amplitude * np.exp(1j * phase_amplitude_rad * smooth())


# --- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["hann", None])
@pytest.mark.parametrize("on", ["complex", "amplitude", "phase"])
def test_estimate_shift_recovers_known_subpixel_shift(on, window):
    truth = smooth_complex()
    moved = apply_shift(truth, KNOWN_SHIFT)
    dy, dx = estimate_shift(truth, moved, upsample=100, on=on, window=window)
    np.testing.assert_allclose((dy, dx), (-KNOWN_SHIFT[0], -KNOWN_SHIFT[1]), atol=SHIFT_ATOL_PX)
    np.testing.assert_allclose(apply_shift(moved, (dy, dx)), truth, atol=0.05)


def test_estimate_shift_on_non_periodic_crops():
    """Crops of a shifted larger object have no periodic wrap; the windowed two-pass estimate copes."""
    big = smooth_complex(shape=(160, 160), seed=21)
    truth = big[20:140, 20:140]
    moved = apply_shift(big, KNOWN_SHIFT)[20:140, 20:140]
    shift = estimate_shift(truth, moved)
    np.testing.assert_allclose(shift, (-KNOWN_SHIFT[0], -KNOWN_SHIFT[1]), atol=SHIFT_ATOL_PX / 5)
    result = compare_objects(moved * np.exp(-1j * 2.5), truth)
    np.testing.assert_allclose(result.shift, shift)
    assert result.metrics["phase"]["ssim"] > NEAR_PERFECT_SSIM
    assert result.metrics["amplitude"]["ssim"] > NEAR_PERFECT_SSIM


def test_apply_shift_integer_is_roll_and_real_stays_real():
    image = np.random.default_rng(1).standard_normal((16, 20)).astype(np.float32)
    shifted = apply_shift(image, (2, -3))
    assert shifted.dtype == np.float32
    np.testing.assert_allclose(shifted, np.roll(image, (2, -3), axis=(0, 1)), atol=1e-5)


def test_estimate_shift_rejects_mismatched_shapes():
    with pytest.raises(DataError):
        estimate_shift(np.zeros((8, 8)), np.zeros((8, 9)))


@pytest.mark.parametrize("offset", [0.7, -2.0, 3.1])
def test_remove_phase_offset_is_exact_for_constant_offset(offset):
    truth = smooth_complex(seed=2)
    recon = truth * np.exp(-1j * offset)
    np.testing.assert_allclose(remove_phase_offset(recon, truth), truth, atol=PHASE_ATOL_RAD)
    assert estimate_phase_offset(recon, truth)[0] == pytest.approx(offset, abs=PHASE_ATOL_RAD)


def test_remove_phase_offset_uses_only_masked_pixels():
    truth = smooth_complex(seed=3)
    recon = truth * np.exp(-1j * 0.4)
    mask = np.zeros(truth.shape, bool)
    mask[20:60, 30:70] = True
    recon[~mask] *= np.exp(1j * 2.0)  # garbage outside the mask must not bias the fit
    aligned = remove_phase_offset(recon, truth, mask=mask)
    np.testing.assert_allclose(aligned[mask], truth[mask], atol=PHASE_ATOL_RAD)


def test_phase_ramp_removal_recovers_known_ramp():
    truth = smooth_complex(seed=4)
    offset, slope_y, slope_x = 0.5, 0.3, -0.2  # steep enough that the ramp wraps many times
    yy, xx = np.meshgrid(np.arange(96) - 47.5, np.arange(96) - 47.5, indexing="ij")
    recon = truth * np.exp(-1j * (offset + slope_y * yy + slope_x * xx))
    fitted = estimate_phase_offset(recon, truth, ramp=True)
    np.testing.assert_allclose(fitted, (offset, slope_y, slope_x), atol=RAMP_ATOL)
    np.testing.assert_allclose(remove_phase_offset(recon, truth, ramp=True), truth, atol=1e-5)


# --- FRC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, "hann"])
def test_frc_of_image_with_itself_is_one(window):
    image = smooth_complex(shape=(64, 64), seed=5)
    result = fourier_ring_correlation(image, image, window=window)
    np.testing.assert_allclose(result.frc, 1.0, atol=FRC_SELF_ATOL)
    assert result.frequency[0] == 0.0 and result.frequency[-1] == pytest.approx(0.5)
    assert len(result.frequency) == 33
    assert result.n_points[0] == 1
    assert result.cutoff_half is None and result.cutoff_half_px is None


def test_frc_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 128, 128))
    result = fourier_ring_correlation(a, b)
    assert abs(np.mean(result.frc[1:])) < FRC_NOISE_MEAN_MAX
    assert np.all(np.abs(result.frc[5:]) < 0.5)


def test_frc_non_square_crops_to_central_square_and_custom_rings():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((40, 64))
    full = fourier_ring_correlation(a, a + 0.1 * rng.standard_normal(a.shape))
    assert len(full.frequency) == 21  # central 40×40 square
    coarse = fourier_ring_correlation(a, a, n_rings=5)
    np.testing.assert_allclose(coarse.frequency, [0, 0.125, 0.25, 0.375, 0.5])
    np.testing.assert_allclose(coarse.frc, 1.0, atol=FRC_SELF_ATOL)


def test_resolution_helpers_interpolate_the_crossing():
    frequency = np.linspace(0, 0.5, 11)
    curve = FRCResult(frequency=frequency, frc=1 - 2 * frequency, n_points=np.ones(11, int))
    assert curve.cutoff_half == pytest.approx(0.25)
    assert curve.cutoff_half_px == pytest.approx(4.0)
    assert curve.cutoff_one_seventh == pytest.approx(3 / 7)
    assert curve.cutoff_one_seventh_px == pytest.approx(7 / 3)
    assert curve.resolution(-2.0) is None and curve.resolution_px(-2.0) is None


# --- image metrics --------------------------------------------------------------------------------


def test_image_metrics_match_skimage():
    rng = np.random.default_rng(8)
    truth = np.abs(smooth_complex(seed=8))
    recon = truth + 0.05 * rng.standard_normal(truth.shape)
    data_range = truth.max() - truth.min()
    metrics = image_metrics(recon, truth)
    assert metrics["mse"] == pytest.approx(mean_squared_error(truth, recon), abs=SKIMAGE_MATCH_ATOL)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(recon - truth)), abs=SKIMAGE_MATCH_ATOL)
    expected_psnr = peak_signal_noise_ratio(truth, recon, data_range=data_range)
    assert metrics["psnr"] == pytest.approx(expected_psnr, abs=SKIMAGE_MATCH_ATOL)
    expected_ssim = structural_similarity(truth, recon, data_range=data_range)
    assert metrics["ssim"] == pytest.approx(expected_ssim, abs=SKIMAGE_MATCH_ATOL)
    assert 0 < metrics["ms_ssim"] < 1


def test_image_metrics_constant_truth_gives_nan_range_metrics():
    metrics = image_metrics(np.ones((16, 16)) * 0.9, np.ones((16, 16)))
    assert np.isnan(metrics["psnr"]) and np.isnan(metrics["ssim"]) and np.isnan(metrics["ms_ssim"])
    assert metrics["mae"] == pytest.approx(0.1)


def test_ms_ssim_is_one_for_identity_and_decreases_with_noise():
    rng = np.random.default_rng(9)
    truth = np.abs(smooth_complex(shape=(128, 128), seed=9))
    data_range = truth.max() - truth.min()
    assert ms_ssim(truth, truth, data_range=data_range) == pytest.approx(1.0, abs=1e-12)
    noise = rng.standard_normal(truth.shape)
    values = [ms_ssim(truth + level * noise, truth, data_range=data_range) for level in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2]


def test_ms_ssim_scale_rule_and_single_scale_equals_ssim():
    sides = (7, 13, 14, 27, 28, 56, 111, 112, 512)
    assert [ms_ssim_scales((s, s)) for s in sides] == [1, 1, 2, 2, 3, 4, 4, 5, 5]
    rng = np.random.default_rng(10)
    truth = rng.random((12, 12))
    recon = truth + 0.05 * rng.standard_normal(truth.shape)
    expected = structural_similarity(truth, recon, data_range=1.0)
    assert ms_ssim(recon, truth, data_range=1.0) == pytest.approx(expected, abs=SKIMAGE_MATCH_ATOL)


def test_psnr255_hand_computation():
    truth = np.full((8, 8), 1.0)
    truth[0, 0] = 2.0  # truth.max() = 2 → scale 127.5
    recon = truth.copy()
    recon[3, 3] += 0.1  # one pixel off by 0.1·127.5 = 12.75 after scaling
    expected = 10 * np.log10(255.0**2 / (12.75**2 / 64))
    assert psnr255(recon, truth) == pytest.approx(expected, rel=1e-12)
    assert image_metrics(recon, truth)["psnr255"] == pytest.approx(expected, rel=1e-12)


def test_mean_ratio_rescale():
    truth = np.abs(smooth_complex(seed=11))
    np.testing.assert_allclose(mean_ratio_rescale(0.25 * truth, truth), truth, rtol=1e-12)
    with pytest.raises(DataError):
        mean_ratio_rescale(np.zeros((8, 8)), truth[:8, :8])


def test_legacy_phase_ssim_inflates_weak_phase_objects():
    rng = np.random.default_rng(12)
    truth_phase = np.angle(smooth_complex(seed=12, phase_amplitude_rad=0.1))
    recon_phase = truth_phase + 0.05 * rng.standard_normal(truth_phase.shape)
    headline = image_metrics(recon_phase, truth_phase)["ssim"]
    legacy = legacy_phase_ssim(recon_phase, truth_phase)
    assert legacy > 0.9 > headline
    assert legacy > headline + 0.2


# --- compare_objects ------------------------------------------------------------------------------


def test_compare_objects_recovers_shift_and_phase_offset():
    truth = smooth_complex(seed=13)
    recon = apply_shift(truth, (-KNOWN_SHIFT[0], -KNOWN_SHIFT[1])) * np.exp(1j * 0.7) * 1.0
    result = compare_objects(recon, truth)
    assert isinstance(result, ComparisonResult)
    np.testing.assert_allclose(result.shift, KNOWN_SHIFT, atol=SHIFT_ATOL_PX)
    assert result.metrics["shift_px"] == pytest.approx(list(result.shift))
    assert result.recon_aligned.shape == result.truth_aligned.shape == (96 - 8, 96 - 8)  # margin ceil(2.7)+1
    assert result.metrics["amplitude"]["ssim"] > NEAR_PERFECT_SSIM
    assert result.metrics["phase"]["ssim"] > NEAR_PERFECT_SSIM
    assert result.metrics["amplitude"]["ms_ssim"] > NEAR_PERFECT_SSIM
    assert result.metrics["amplitude_mean"]["ratio"] == pytest.approx(1.0, abs=1e-3)
    assert result.metrics["frc"]["frc50_cycles_per_px"] is None  # never drops below 0.5
    assert set(result.metrics) == {
        "amplitude", "amplitude_rescaled", "phase", "frc", "amplitude_mean", "phase_ssim_legacy", "shift_px",
    }


def test_compare_objects_scores_an_unrelated_reconstruction_unregistered_with_a_warning():
    """Noise against a smooth truth: the correlation peak is anywhere; a large 'shift' is rejected
    (no margin is cut) and the poor reconstruction is scored, not refused."""
    truth = smooth_complex(seed=13)
    rng = np.random.default_rng(5)
    for attempt in range(20):  # find noise whose spurious peak lies far away (most do)
        noise = (rng.normal(size=truth.shape) + 1j * rng.normal(size=truth.shape)).astype(np.complex64)
        if max(abs(s) for s in estimate_shift(truth, noise, upsample=10)) > 0.125 * truth.shape[0]:
            break
    with pytest.warns(UserWarning, match="scoring it unregistered"):
        result = compare_objects(noise, truth)
    assert result.shift == (0.0, 0.0) and result.recon_aligned.shape == (94, 94)  # only the 1 px margin of any registration
    assert result.metrics["phase"]["ssim"] < 0.2


def test_compare_objects_reports_absolute_amplitude_ratio_and_rescaled_metrics():
    truth = smooth_complex(seed=14)
    result = compare_objects(0.5 * truth, truth, phase_ramp=True)
    assert result.shift == pytest.approx((0.0, 0.0), abs=SHIFT_ATOL_PX)
    assert result.metrics["amplitude_mean"]["ratio"] == pytest.approx(0.5, rel=1e-6)
    assert result.metrics["amplitude"]["ssim"] < 0.9
    assert result.metrics["amplitude_rescaled"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result.metrics["amplitude_rescaled"]["mae"] == pytest.approx(0.0, abs=1e-6)
    assert result.metrics["phase"]["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_compare_objects_crops_to_support_bbox_without_registration():
    truth = smooth_complex(seed=15)
    support = np.zeros(truth.shape, bool)
    support[10:50, 20:44] = True
    result = compare_objects(truth, truth, support=support, register=False)
    assert result.truth_aligned.shape == (40, 24)
    assert result.shift == (0.0, 0.0)


@pytest.mark.parametrize(
    ("recon", "truth", "support", "match"),
    [
        (np.ones((32, 32), complex), np.ones((32, 30), complex), None, "differs"),
        (np.ones((0, 0), complex), np.ones((0, 0), complex), None, "empty"),
        (np.ones((12, 40), complex), np.ones((12, 40), complex), None, "at least 16"),
        (np.ones((32, 32), complex), np.ones((32, 32), complex), np.zeros((32, 32), bool), "no pixels"),
        (
            np.ones((32, 32), complex),
            np.ones((32, 32), complex),
            np.pad(np.ones((10, 10), bool), 11),
            "at least 16",
        ),
    ],
)
def test_compare_objects_rejects_bad_inputs(recon, truth, support, match):
    with pytest.raises(DataError, match=match) as info:
        compare_objects(recon, truth, support=support)
    assert info.value.exit_code == 3


def test_compare_objects_reports_non_finite_reconstruction():
    truth = smooth_complex(seed=16)
    recon = truth.copy()
    recon[0, :3] = np.nan
    recon[5, 5] = np.inf
    with pytest.raises(DataError, match="reconstruction contains 4 NaN/Inf pixels") as info:
        compare_objects(recon, truth)
    assert info.value.exit_code == 3


def test_resolution_ignores_a_recovered_low_frequency_dip_and_first_drop_reports_it():
    from ptycho.metrics.frc import FRCResult

    frequency = np.linspace(0, 0.5, 11)
    curve = np.array([1.0, 0.3, 0.9, 0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2])  # dip at 0.05, loss at ~0.375
    frc = FRCResult(frequency=frequency, frc=curve, n_points=np.ones(11, int))
    assert frc.resolution(0.5) == pytest.approx(0.35 + 0.05 * (0.6 - 0.5) / (0.6 - 0.4))
    assert frc.first_drop(0.5) == pytest.approx(0.05 * (1.0 - 0.5) / (1.0 - 0.3))
    assert FRCResult(frequency, np.full(11, 0.9), np.ones(11, int)).resolution(0.5) is None
    assert FRCResult(frequency, np.full(11, 0.1), np.ones(11, int)).resolution(0.5) == 0.0
