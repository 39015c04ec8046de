"""pty-chi's LSQML with probe and position correction through ``benchmarks.ptychi_adapter``
(issue 12's external reference). pty-chi and torch are optional: every test is skipped when they do
not import, as in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.ptychi_adapter import Refinement, available, reconstruct_lsqml  # noqa: E402

pytestmark = pytest.mark.skipif(not available()[0], reason=available()[1])

N, SIDE, SIGMA_PX = 32, 80, 0.7


def position_rms(x, y, x_true, y_true):
    dx, dy = x - x_true, y - y_true
    return float(np.sqrt(np.mean((dx - dx.mean()) ** 2 + (dy - dy.mean()) ** 2)))


@pytest.fixture(scope="module")
def scan():
    """A Poisson-noisy N=32 raster of 36 windows over a smooth phase object, its patterns made at
    true positions that differ from the dataset's nominal ones by N(0, σ²) per axis."""
    from ptycho.data.dataset import Dataset
    from ptycho.physics.operators.geometry import window_geometry
    from ptycho.physics.operators.numpy_ops import diffraction_intensity, extract

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    obj = (np.exp(1j * (0.8 * np.sin(xx / 3.1) * np.cos(yy / 4.3) + 0.5 * np.sin((xx + yy) / 7.0)))
           * (0.8 + 0.2 * np.cos(xx / 5.0))).astype(np.complex64)
    r2 = np.sum(np.square(np.mgrid[-N // 2:N // 2, -N // 2:N // 2]), axis=0)
    probe = np.exp(-r2 / 36.0 + 1j * r2 / 40.0)
    probe = (probe * np.sqrt(1e5 / np.sum(np.abs(probe) ** 2))).astype(np.complex64)
    grid = np.arange(24.0, 57.0, 5.5)  # whole and half pixels: exact in float32
    x, y = (a.ravel() for a in np.meshgrid(grid, grid))
    x_true, y_true = x + rng.normal(0, SIGMA_PX, x.size), y + rng.normal(0, SIGMA_PX, y.size)
    counts = rng.poisson(diffraction_intensity(extract(obj, window_geometry(x_true, y_true, N)), probe))
    return Dataset(diffraction=counts.astype(np.float32), x=x, y=y, probe=probe, object=obj), x_true, y_true


def test_position_correction_moves_the_positions_towards_the_truth(scan):
    ds, x_true, y_true = scan
    result = reconstruct_lsqml(ds, 12, refine=Refinement(position_start=2, position_step=1.0))
    moved = np.stack([result["x"] - ds.x, result["y"] - ds.y], axis=1)
    wanted = np.stack([x_true - ds.x, y_true - ds.y], axis=1)
    wanted -= wanted.mean(axis=0)  # the adapter keeps the mean offset at zero: a common shift is the object's
    assert np.abs(moved.mean(axis=0)).max() < 1e-4
    assert np.mean(np.sum(moved * wanted, axis=1) > 0) > 0.75  # most positions moved the right way
    assert position_rms(result["x"], result["y"], x_true, y_true) < position_rms(ds.x, ds.y, x_true, y_true) - 0.05
    # the probe comes back in ptycho's scale and photon gauge (Σ|P|² held at the guess's)
    assert result["probe"].shape == (1, N, N)
    np.testing.assert_allclose(np.sum(np.abs(result["probe"]) ** 2), np.sum(np.abs(ds.probe) ** 2), rtol=1e-4)


def test_without_position_correction_the_nominal_positions_come_back_exactly(scan):
    ds, _, _ = scan
    states = []
    result = reconstruct_lsqml(ds, 2, refine=Refinement(probe_modes=2, positions=False),
                               callback=lambda s: states.append(s.positions()))
    assert np.array_equal(result["x"], ds.x) and np.array_equal(result["y"], ds.y)
    assert all(np.array_equal(x, ds.x) and np.array_equal(y, ds.y) for x, y in states)
    assert result["probe"].shape == (2, N, N)  # resized to two modes, summed power kept
    np.testing.assert_allclose(np.sum(np.abs(result["probe"]) ** 2), np.sum(np.abs(ds.probe) ** 2), rtol=1e-4)
    assert result["support"].any() and not result["support"].all()


def test_the_total_shift_is_bounded_per_axis(scan):
    ds, _, _ = scan
    bound = 0.05
    result = reconstruct_lsqml(ds, 8, refine=Refinement(position_start=2, position_step=1.0, max_shift_px=bound))
    offsets = np.stack([result["x"] - ds.x, result["y"] - ds.y])
    assert np.abs(offsets).max() <= bound + 1e-5  # float32 positions
    assert np.abs(offsets).max() > 0.5 * bound  # it did move, and the bound held it
