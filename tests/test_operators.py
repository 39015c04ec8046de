"""The operator contract (``ptycho.physics.operators``), run against every backend: the window
geometry, the adjoint, exact whole-pixel copies, sub-pixel accuracy, the unitary DC-centred FFT,
and agreement between the NumPy and the TensorFlow backends."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptycho.physics.operators import BACKENDS, get_operators
from ptycho.physics.operators import numpy_ops
from ptycho.physics.operators.geometry import window_geometry

ADJOINT_RTOL = 1e-4
"""⟨Ex, y⟩ against ⟨x, Eᵀy⟩ for complex64 operators on ~10³-term sums."""
PARSEVAL_RTOL = 1e-5
ATOL_F32 = 2e-5
"""Agreement expected between two float32 implementations of the same interpolation."""
F_MAX = 0.05
"""Highest spatial frequency (cycles/px) of the band-limited test object."""
BILINEAR_ATOL = 0.5 * (np.pi * F_MAX) ** 2 / 2 + 1e-4
"""Bilinear interpolation of a sinusoid of frequency f errs by at most 1 − cos(π·f) ≈ (π·f)²/2 of
its amplitude; the object's sinusoids total 0.5 in amplitude."""


@pytest.fixture(params=BACKENDS)
def ops(request):
    return get_operators(request.param)


def as_array(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def random_complex(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def scene():
    """Two 50×61 images, 17 windows of 12 px each, mostly sub-pixel, inside the images."""
    rng = np.random.default_rng(3)
    B, H, W, N, K = 2, 50, 61, 12, 17
    images = random_complex(rng, B, H, W)
    x = rng.uniform(N / 2, W - N / 2 - 1, (B, K))
    y = rng.uniform(N / 2, H - N / 2 - 1, (B, K))
    x[:, 0], y[:, 0] = 20.0, 15.5  # a whole-pixel corner in x (N even), half a pixel in y
    return rng, images, x, y, N


def test_window_covers_the_pixel_centres_around_its_position(ops):
    """A window of size N at (x, y) covers pixel centres x − (N−1)/2 … x + (N−1)/2, copied exactly."""
    image = np.arange(20 * 30, dtype=np.float32).reshape(1, 20, 30).astype(np.complex64)
    even = as_array(ops.extract_patches(image, np.array([[10.5]]), np.array([[6.5]]), 4))[0, 0]
    np.testing.assert_array_equal(even, image[0, 5:9, 9:13])  # 10.5 − 1.5 = 9 … 12
    odd = as_array(ops.extract_patches(image, np.array([[10.0]]), np.array([[6.0]]), 5))[0, 0]
    np.testing.assert_array_equal(odd, image[0, 4:9, 8:13])


def test_subpixel_windows_are_bilinear(ops):
    image = np.zeros((1, 10, 10), np.complex64)
    image[0, 4, 4] = 1.0
    value = as_array(ops.extract_patches(image, np.array([[4.25]]), np.array([[4.0]]), 1))[0, 0, 0, 0]
    assert value == pytest.approx(0.75)


def test_subpixel_extraction_matches_an_exact_fourier_shift_of_band_limited_content(ops):
    size, N = 120, 32
    yy, xx = np.mgrid[0:size, 0:size]
    obj = np.ones((size, size), np.complex128)
    for kx, ky, amp in [(3, 2, 0.3), (-5, 1, 0.1), (2, -5, 0.1j)]:
        assert np.hypot(kx, ky) / size <= F_MAX
        obj += amp * np.cos(2 * np.pi * (kx * xx + ky * yy) / size)
    frac_x, frac_y, corner_x, corner_y = 0.37, 0.81, 30, 41
    x = np.array([[corner_x + frac_x + (N - 1) / 2]])
    y = np.array([[corner_y + frac_y + (N - 1) / 2]])
    got = as_array(ops.extract_patches(obj.astype(np.complex64)[None], x, y, N))[0, 0]
    shifted = ndimage.fourier_shift(np.fft.fft2(obj), shift=(-frac_y, -frac_x))
    exact = np.fft.ifft2(shifted)[corner_y:corner_y + N, corner_x:corner_x + N]
    np.testing.assert_allclose(got, exact, atol=BILINEAR_ATOL)


def test_place_is_the_adjoint_of_extract(ops, scene):
    rng, images, x, y, N = scene
    B, H, W = images.shape
    patches = random_complex(rng, *x.shape, N, N)
    lhs = np.vdot(as_array(ops.extract_patches(images, x, y, N)), patches)
    rhs = np.vdot(images, as_array(ops.place_patches(patches, x, y, H, W)))
    assert abs(lhs - rhs) <= ADJOINT_RTOL * abs(lhs)


def test_whole_pixel_placement_is_an_exact_copy(ops):
    rng = np.random.default_rng(4)
    N = 8
    patches = random_complex(rng, 1, 2, N, N)
    x = np.array([[4.5, 25.5]])  # corners at columns 1 and 22: disjoint, the second flush with the edge
    y = np.array([[5.5, 19.5]])  # rows 2… and 16…23, the last row
    canvas = as_array(ops.place_patches(patches, x, y, 24, 30))[0]
    np.testing.assert_array_equal(canvas[2:10, 1:9], patches[0, 0])
    np.testing.assert_array_equal(canvas[16:24, 22:30], patches[0, 1])
    assert np.count_nonzero(canvas) == np.count_nonzero(patches)
    np.testing.assert_array_equal(as_array(ops.extract_patches(canvas[None], x, y, N)), patches)


def test_propagation_is_unitary_dc_centred_and_inverted(ops):
    rng = np.random.default_rng(2)
    waves = random_complex(rng, 3, 16, 16)
    spectra = as_array(ops.propagate(waves))
    np.testing.assert_allclose(np.sum(np.abs(spectra) ** 2, axis=(1, 2)), np.sum(np.abs(waves) ** 2, axis=(1, 2)),
                               rtol=PARSEVAL_RTOL)
    np.testing.assert_allclose(as_array(ops.back_propagate(spectra)), waves, atol=1e-5)
    flat = as_array(ops.farfield_intensity(np.ones((1, 16, 16), np.complex64)))[0]
    assert flat[8, 8] == pytest.approx(256.0, rel=PARSEVAL_RTOL) and flat.sum() == pytest.approx(256.0)


def test_diffraction_intensity_is_the_illuminated_windows_far_field(ops):
    rng = np.random.default_rng(5)
    patches, probe = random_complex(rng, 2, 3, 16, 16), random_complex(rng, 16, 16)
    counts = as_array(ops.diffraction_intensity(patches, probe))
    np.testing.assert_allclose(counts.sum(axis=(-2, -1)), np.sum(np.abs(patches * probe) ** 2, axis=(-2, -1)),
                               rtol=PARSEVAL_RTOL)
    reference = np.fft.fftshift(np.abs(np.fft.fft2(patches * probe, norm="ortho")) ** 2, axes=(-2, -1))
    np.testing.assert_allclose(counts, reference, rtol=1e-4, atol=1e-4 * reference.max())


def test_mixed_state_counts_are_the_incoherent_sum_of_the_modes(ops):
    """``Σ_k |F(P_k·O)|²``: each mode simulated alone, then added; Parseval over all modes."""
    rng = np.random.default_rng(6)
    patches, modes = random_complex(rng, 2, 3, 16, 16), random_complex(rng, 3, 16, 16)
    counts = as_array(ops.diffraction_intensity(patches, modes))
    alone = sum(as_array(ops.diffraction_intensity(patches, mode)) for mode in modes)
    np.testing.assert_allclose(counts, alone, rtol=1e-5, atol=1e-5 * alone.max())
    energy = sum(np.sum(np.abs(patches * mode) ** 2, axis=(-2, -1)) for mode in modes)
    np.testing.assert_allclose(counts.sum(axis=(-2, -1)), energy, rtol=PARSEVAL_RTOL)


def test_one_mode_is_the_coherent_probe_bit_for_bit(ops):
    rng = np.random.default_rng(7)
    patches, probe = random_complex(rng, 2, 3, 16, 16), random_complex(rng, 16, 16)
    np.testing.assert_array_equal(as_array(ops.diffraction_intensity(patches, probe[None])),
                                  as_array(ops.diffraction_intensity(patches, probe)))


@pytest.mark.parametrize("shape", [(0, 16, 16), (2, 16, 12), (16,), (1, 2, 16, 16)])
def test_probes_without_modes_or_not_square_are_refused(ops, shape):
    patches = np.ones((1, 16, 16), np.complex64)
    with pytest.raises(ValueError, match="probe"):
        ops.diffraction_intensity(patches, np.ones(shape, np.complex64))


def test_position_gradients_are_the_derivative_of_the_bilinear_window(scene):
    """Central differences of ``extract`` in x and y match ``extract_with_gradients`` (away from
    whole pixels the window is linear in the fraction, so the match is exact to rounding)."""
    rng, images, x, y, N = scene
    canvas = images[0]
    x0, y0 = x[0, 1:], y[0, 1:]
    h = 1e-3
    patches, d_dx, d_dy = numpy_ops.extract_with_gradients(canvas, window_geometry(x0, y0, N))
    np.testing.assert_array_equal(patches, numpy_ops.extract(canvas, window_geometry(x0, y0, N)))
    fx = window_geometry(x0, y0, N).fx
    fy = window_geometry(x0, y0, N).fy
    inside = (fx > 2 * h) & (fx < 1 - 2 * h) & (fy > 2 * h) & (fy < 1 - 2 * h)
    assert inside.sum() >= 10
    for grad, (ax, ay) in ((d_dx, (h, 0.0)), (d_dy, (0.0, h))):
        ahead = numpy_ops.extract(canvas.astype(np.complex128), window_geometry(x0 + ax, y0 + ay, N))
        behind = numpy_ops.extract(canvas.astype(np.complex128), window_geometry(x0 - ax, y0 - ay, N))
        np.testing.assert_allclose(grad[inside], ((ahead - behind) / (2 * h))[inside], atol=2e-3)


def test_the_two_backends_agree(scene):
    rng, images, x, y, N = scene
    B, H, W = images.shape
    numpy_ops_, tf_ops = (get_operators(name) for name in BACKENDS)
    patches = random_complex(rng, *x.shape, N, N)
    for call in (lambda ops: ops.extract_patches(images, x, y, N),
                 lambda ops: ops.place_patches(patches, x, y, H, W),
                 lambda ops: ops.propagate(patches),
                 lambda ops: ops.back_propagate(patches),
                 lambda ops: ops.diffraction_intensity(patches, patches[0, 0]),
                 lambda ops: ops.diffraction_intensity(patches, patches[0, :3])):
        np.testing.assert_allclose(as_array(call(numpy_ops_)), as_array(call(tf_ops)), rtol=1e-5, atol=1e-4)


def test_numpy_fast_path_is_the_interface_in_the_unshifted_layout(scene):
    """The per-canvas ``extract``/``place`` and the unshifted ``farfield`` that the iterative
    engines call are the interface's operators, not a second definition."""
    rng, images, x, y, N = scene
    windows = window_geometry(x[0], y[0], N)
    np.testing.assert_array_equal(numpy_ops.extract(images[0], windows), numpy_ops.extract_patches(images, x, y, N)[0])
    waves = random_complex(rng, 4, N, N)
    np.testing.assert_allclose(numpy_ops.farfield(waves.copy()), numpy_ops.to_fft_layout(numpy_ops.propagate(waves)),
                               atol=1e-6)


def test_numpy_backend_refuses_windows_outside_the_canvas():
    with pytest.raises(ValueError, match="outside the 10×10 canvas"):
        numpy_ops.extract(np.ones((10, 10), np.complex64), window_geometry(np.array([8.0]), np.array([5.0]), 6))


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown operator backend 'jax'"):
        get_operators("jax")  # type: ignore[arg-type]
