"""The earlier PtychoPINN's position convention (issue 13, item 13), checked by measurement.

Its ``get_image_patches`` pads the object by ``N // 2`` and translates it by ``−(x, y)`` with a
bilinear warp whose output pixel ``(r, c)`` samples the input at ``(r + y, c + x)``, then keeps the
first ``N×N`` pixels: a window's first pixel is at ``x − N/2``. :func:`earlier_windows`
re-implements that rule (from its documented semantics, not its code); a legacy file simulated
with it must be reproduced by our forward model at the positions our reader returns.
"""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.io.legacy import POSITION_SHIFT_PX
from ptycho.physics.operators.numpy_ops import diffraction_intensity, extract_patches

N = 32
SIZE = 96
MATCH_RTOL = 1e-5
"""Our forward model on the reader's positions vs. the earlier convention's data (float32 FFTs)."""
OFF_BY_HALF_MIN = 1e-3
"""Half a pixel off (the convention before this fix) misses by at least this much."""


def earlier_windows(obj: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Windows as the earlier implementation cut them: pad by N//2, sample (r + y, c + x) bilinearly."""
    padded = np.pad(obj.astype(np.complex128), N // 2)
    rows, cols = np.arange(N)[:, None], np.arange(N)[None, :]
    out = []
    for xi, yi in zip(x, y):
        sy, sx = rows + yi, cols + xi
        y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
        fy, fx = sy - y0, sx - x0
        out.append((1 - fy) * (1 - fx) * padded[y0, x0] + (1 - fy) * fx * padded[y0, x0 + 1]
                   + fy * (1 - fx) * padded[y0 + 1, x0] + fy * fx * padded[y0 + 1, x0 + 1])
    return np.asarray(out)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(13)
    obj = (rng.uniform(0.5, 1.0, (SIZE, SIZE)) * np.exp(1j * rng.uniform(0, 1, (SIZE, SIZE)))).astype(np.complex64)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    probe = (np.exp(-(xx**2 + yy**2) / (2 * 6.0**2)) * np.exp(0.02j * (xx**2 + yy**2)) * 300).astype(np.complex64)
    # legacy positions, whole and fractional, keeping every window inside the object
    x = np.concatenate([rng.integers(N // 2, SIZE - N // 2 - 1, 6), rng.uniform(N // 2, SIZE - N // 2 - 1, 6)])
    y = np.concatenate([rng.integers(N // 2, SIZE - N // 2 - 1, 6), rng.uniform(N // 2, SIZE - N // 2 - 1, 6)])
    return obj, probe, x.astype(np.float64), y.astype(np.float64)


def forward(obj: np.ndarray, probe: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Our forward model: windows at ``(x, y)`` in our convention, illuminated and propagated."""
    return diffraction_intensity(extract_patches(obj[None], x[None], y[None], N)[0], probe)


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def test_our_forward_model_reproduces_data_simulated_in_the_earlier_convention(scene, tmp_path):
    obj, probe, x_legacy, y_legacy = scene
    counts = diffraction_intensity(earlier_windows(obj, x_legacy, y_legacy), probe)
    path = tmp_path / "legacy.npz"
    np.savez(path, diff3d=np.sqrt(counts).astype(np.float32), xcoords=x_legacy, ycoords=y_legacy,
             xcoords_start=x_legacy, ycoords_start=y_legacy, probeGuess=probe, objectGuess=obj)
    with load_dataset(path) as ds:
        np.testing.assert_allclose(ds.x, x_legacy - 0.5)
        measured = ds.read_patterns()
        error = relative_error(forward(obj, probe, ds.x, ds.y), measured)
        unshifted = relative_error(forward(obj, probe, x_legacy, y_legacy), measured)
    print(f"relative error: {error:.2e} at the reader's positions, {unshifted:.2e} half a pixel off")
    assert error < MATCH_RTOL
    assert unshifted > OFF_BY_HALF_MIN


def test_the_writer_uses_the_earlier_convention_too(scene, tmp_path):
    obj, probe, x_legacy, y_legacy = scene
    with load_dataset(_legacy_file(tmp_path, obj, probe, x_legacy, y_legacy)) as ds:
        out = save_dataset(tmp_path / "again.npz", ds, format="ptychopinn-npz")
    with np.load(out, allow_pickle=False) as raw:
        np.testing.assert_allclose(raw["xcoords"], x_legacy, atol=1e-12)
        np.testing.assert_allclose(raw["ycoords_start"], y_legacy, atol=1e-12)
    assert POSITION_SHIFT_PX == -0.5


def _legacy_file(tmp_path, obj, probe, x, y):
    path = tmp_path / "legacy.npz"
    counts = diffraction_intensity(earlier_windows(obj, x, y), probe)
    np.savez(path, diff3d=np.sqrt(counts).astype(np.float32), xcoords=x, ycoords=y, probeGuess=probe,
             objectGuess=obj)
    return path
