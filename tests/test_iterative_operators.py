"""The NumPy operators of the iterative solvers against ptycho's conventions and its TensorFlow
forward model, and the global estimate the PINN reads."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.iterative.operators import (
    backfield,
    extract,
    farfield,
    measured_modulus,
    modulus_correction,
    place,
    window_geometry,
)
from ptycho.iterative.streaming import global_estimate

ATOL_F32 = 2e-5
"""Agreement expected between two float32 implementations of the same interpolation."""


def _random_complex(rng, *shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """N=32, 80×80 lines object, 100 random positions, noise-free, in memory."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.io.datasets import load_dataset
    from ptycho.workflows.simulate import simulate

    path = tmp_path_factory.mktemp("data") / "small.npz"
    simulate(SimulateConfig(N=32, object={"size": 80}, scan={"n_images": 100}, noise=False), path, preview=False)
    with load_dataset(path) as ds:
        return ds.subset(range(ds.n_patterns))


@pytest.fixture
def scene():
    rng = np.random.default_rng(3)
    H, W, N, B = 50, 61, 12, 17
    image = _random_complex(rng, H, W)
    x = rng.uniform(N / 2, W - N / 2 - 1, B)
    y = rng.uniform(N / 2, H - N / 2 - 1, B)
    x[0], y[0] = 20.0, 15.5  # whole-pixel corner in x (N even), half-pixel in y
    return rng, image, x, y, N


def test_window_convention_whole_pixels():
    """A window of size N at (x, y) covers pixel centres x − (N−1)/2 … x + (N−1)/2 (SPEC §2)."""
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30).astype(np.complex64)
    N = 4
    patch = extract(image, window_geometry(np.array([10.5]), np.array([6.5]), N))[0]
    np.testing.assert_array_equal(patch, image[5:9, 9:13])  # 10.5 − 1.5 = 9 … 12
    odd = extract(image, window_geometry(np.array([10.0]), np.array([6.0]), 5))[0]
    np.testing.assert_array_equal(odd, image[4:9, 8:13])


def test_subpixel_is_bilinear():
    image = np.zeros((10, 10), np.complex64)
    image[4, 4] = 1.0
    patch = extract(image, window_geometry(np.array([4.25]), np.array([4.0]), 1))[0]
    assert patch[0, 0] == pytest.approx(0.75)


def test_matches_ptycho_forward_operators(scene):
    """Same numbers as ptycho.physics.forward.extract_patches / place_patches (TensorFlow)."""
    from ptycho.physics.forward import extract_patches, place_patches

    rng, image, x, y, N = scene
    windows = window_geometry(x, y, N)
    np.testing.assert_allclose(extract(image, windows), extract_patches(image[None], x[None], y[None], N).numpy()[0],
                               atol=ATOL_F32)
    patches = _random_complex(rng, len(x), N, N)
    H, W = image.shape
    np.testing.assert_allclose(place(patches, windows, (H, W)),
                               place_patches(patches[None], x[None], y[None], H, W).numpy()[0], atol=ATOL_F32)


def test_place_is_the_adjoint_of_extract(scene):
    rng, image, x, y, N = scene
    windows = window_geometry(x, y, N)
    patches = _random_complex(rng, len(x), N, N)
    lhs = np.vdot(extract(image.astype(np.complex128), windows), patches)
    rhs = np.vdot(image, place(patches.astype(np.complex128), windows, image.shape))
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_windows_outside_the_canvas_are_refused():
    with pytest.raises(ValueError, match="outside"):
        extract(np.ones((10, 10), np.complex64), window_geometry(np.array([8.0]), np.array([5.0]), 6))


def test_farfield_is_unitary_and_matches_ptycho_propagation(scene):
    from ptycho.physics.forward import propagate

    rng, *_ = scene
    waves = _random_complex(rng, 3, 16, 16)
    spectra = farfield(waves.copy())
    assert np.sum(np.abs(spectra) ** 2) == pytest.approx(np.sum(np.abs(waves) ** 2), rel=1e-5)  # Parseval
    np.testing.assert_allclose(np.fft.fftshift(spectra, axes=(-2, -1)), propagate(waves).numpy(), atol=1e-4)
    np.testing.assert_allclose(backfield(spectra.copy()), waves, atol=1e-5)


def test_truth_reproduces_the_measured_modulus(small):
    """The true object through these operators gives the dataset's counts: positions, window
    convention, probe gauge, FFT norm and DC-centring all agree with `ptycho simulate`."""
    windows = window_geometry(small.x, small.y, small.N)
    spectra = farfield(extract(small.object, windows) * small.probe)
    modulus = measured_modulus(small.read_patterns())
    _, sq_error = modulus_correction(spectra, modulus)
    assert sq_error / np.sum(modulus.astype(np.float64) ** 2) < 1e-9


def test_modulus_correction_projects_onto_the_measurement():
    rng = np.random.default_rng(0)
    spectra = _random_complex(rng, 2, 8, 8)
    spectra[0, 0, 0] = 0
    modulus = np.abs(_random_complex(rng, 2, 8, 8))
    projected = spectra + modulus_correction(spectra.copy(), modulus)[0]
    np.testing.assert_allclose(np.abs(projected), modulus, rtol=1e-5)
    keep = np.abs(spectra) > 0
    np.testing.assert_allclose(np.angle(projected[keep]), np.angle(spectra[keep]), atol=1e-5)


def test_global_estimate_fits_the_data_better_with_every_pass(small):
    """The windows of the global estimate reproduce the measured moduli ever better: the
    normalised Fourier-modulus error falls from the unit start through 1, 2 and 4 passes."""
    modulus = measured_modulus(small.read_patterns())
    total = np.sum(modulus.astype(np.float64) ** 2)

    def error(patches):
        return modulus_correction(farfield(patches * small.probe), modulus)[1] / total

    start = error(np.ones((small.n_patterns, small.N, small.N), np.complex64))
    errors = [error(global_estimate(small, passes, chunk=32).patches(np.arange(small.n_patterns)))
              for passes in (1, 2, 4)]
    print(start, errors)
    assert start > errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * start  # observed 1e-3
