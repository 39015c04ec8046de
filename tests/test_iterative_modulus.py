"""The iterative engines' Fourier-modulus constraint against the data ``simulate`` writes, and the
global estimate the PINN reads (the operators themselves: tests/test_operators.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.iterative.modulus import measured_modulus, modulus_correction
from ptycho.iterative.streaming import global_estimate
from ptycho.physics.operators.geometry import window_geometry
from ptycho.physics.operators.numpy_ops import extract, farfield


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
    assert start > errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * start  # observed 1e-3
