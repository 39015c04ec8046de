"""The PINN's physics layers (docs/model.md#physics-layers): per-group reassembly on a canvas sized from the actual
offsets, same support top and bottom, and an in-model forward path equal to ``simulate``'s."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.config.simulate import SimulateConfig
from ptycho.data.grouping import make_groups
from ptycho.io.datasets import load_dataset
from ptycho.models.physics import (
    canvas_positions,
    canvas_size,
    group_consistent_patches,
    predicted_counts,
    reassemble_groups,
)
from ptycho.physics.operators.tf_ops import extract_patches, place_patches
from ptycho.workflows.simulate import simulate

N = 32
EXACT_RTOL = 1e-5
"""Whole-pixel windows: placement and extraction are copies; only float32 sums round."""
FORWARD_RTOL = 1e-5
"""In-model forward path vs. simulate: the same operators on the same numbers."""
FORWARD_ATOL_FRACTION = 1e-6
"""... plus an absolute floor relative to the brightest pixel (FFT rounding in dark pixels)."""
MASS_RTOL = 1e-5


def random_object(shape, seed=0):
    rng = np.random.default_rng(seed)
    amp = 0.6 + 0.4 * rng.random(shape)
    return (amp * np.exp(1j * rng.uniform(-1, 1, shape))).astype(np.complex64)


def whole_pixel_groups(gridsize, B=1, spread=9, seed=0):
    """Integer member offsets ``(B, C)`` in ``[−spread, spread]``, relative to the canvas centre as
    the model uses them (they need not average to zero for the layers)."""
    rng = np.random.default_rng(seed)
    C = gridsize**2
    ox = rng.integers(-spread, spread + 1, size=(B, C)).astype(np.float64)
    oy = rng.integers(-spread, spread + 1, size=(B, C)).astype(np.float64)
    return ox, oy


def patches_from_objects(objects, ox, oy, size):
    """Cut each group's member windows from its own object (B, size, size) at the canvas
    positions of the offsets."""
    px, py = canvas_positions(ox, oy, size)
    return extract_patches(objects, px, py, N).numpy()


@pytest.mark.parametrize("gridsize", [2, 3])
def test_reassemble_then_extract_is_exact_for_whole_pixel_offsets(gridsize):
    """Patches cut from one object at whole-pixel offsets are mutually consistent, so the overlap
    average and re-extraction must return them unchanged."""
    ox, oy = whole_pixel_groups(gridsize, B=3, seed=gridsize)
    size = canvas_size(max(np.abs(ox).max(), np.abs(oy).max()), N)
    # a whole-pixel window corner: offset + (size − N)/2 must be an integer
    assert (size - N) % 2 == 0
    objects = random_object((3, size, size), seed=1)
    patches = patches_from_objects(objects, ox, oy, size)
    out = group_consistent_patches(patches, ox, oy, size).numpy()
    assert out.shape == patches.shape and out.dtype == np.complex64
    np.testing.assert_allclose(out, patches, rtol=EXACT_RTOL, atol=EXACT_RTOL)


def test_inconsistent_patches_are_averaged_not_kept():
    """Four constant patches c_k at offsets (±2, ±2): where all four overlap the result is their
    mean; where only one member reaches, its own value is kept (no averaging with empty pixels)."""
    ox = np.array([[-2.0, 2.0, -2.0, 2.0]])
    oy = np.array([[-2.0, -2.0, 2.0, 2.0]])
    size = canvas_size(2, N)
    assert (size - N) % 2 == 0  # whole-pixel windows: placement and extraction are exact copies
    values = np.array([1.0, 2.0 + 1.0j, 0.5 - 0.5j, 3.0], np.complex64)
    patches = np.broadcast_to(values[None, :, None, None], (1, 4, N, N)).astype(np.complex64)
    out = group_consistent_patches(patches, ox, oy, size).numpy()
    centre = out[0, :, 4:N - 4, 4:N - 4]  # every member's central pixels lie under all four windows
    np.testing.assert_allclose(centre, np.full_like(centre, values.mean()), rtol=EXACT_RTOL, atol=EXACT_RTOL)
    # each member's outer corner (away from the others) is covered by that member alone
    corners = [out[0, 0, 0, 0], out[0, 1, 0, N - 1], out[0, 2, N - 1, 0], out[0, 3, N - 1, N - 1]]
    np.testing.assert_allclose(corners, values, rtol=EXACT_RTOL, atol=EXACT_RTOL)


def test_a_batch_is_never_merged_into_one_canvas():
    """Two groups with the same offsets but different objects: batched = one call per group."""
    ox, oy = whole_pixel_groups(2, B=1, spread=6, seed=3)
    ox2, oy2 = np.repeat(ox, 2, axis=0), np.repeat(oy, 2, axis=0)
    size = canvas_size(6, N)
    objects = random_object((2, size, size), seed=4)
    patches = patches_from_objects(objects, ox2, oy2, size)
    # make group 1's members disagree with each other, so any mixing shows
    patches[1] *= np.exp(1j * np.linspace(0, 3, 4))[:, None, None].astype(np.complex64)
    batched = group_consistent_patches(patches, ox2, oy2, size).numpy()
    canvases = reassemble_groups(patches, ox2, oy2, size).numpy()
    for b in range(2):
        single = group_consistent_patches(patches[b:b + 1], ox2[b:b + 1], oy2[b:b + 1], size).numpy()
        np.testing.assert_allclose(batched[b], single[0], rtol=EXACT_RTOL, atol=1e-6)
        alone = reassemble_groups(patches[b:b + 1], ox2[b:b + 1], oy2[b:b + 1], size).numpy()
        np.testing.assert_allclose(canvases[b], alone[0], rtol=EXACT_RTOL, atol=1e-6)
    assert np.abs(batched[0] - batched[1]).max() > 0.1, "the two groups came out the same"


@pytest.mark.parametrize("subpixel", [False, True])
def test_unsupported_pixels_stay_zero_and_nothing_is_amplified(subpixel):
    """No ``+ε`` in the denominator: a canvas pixel no member covers is exactly 0, and a covered
    pixel is a weighted average of member values, so never larger than the largest of them."""
    ox = np.array([[-7.0, 5.0, -3.0, 8.0]])
    oy = np.array([[-6.0, -4.0, 7.0, 3.0]])
    if subpixel:
        ox, oy = ox + 0.37, oy - 0.81
    size = canvas_size(10, N) + 12  # extra margin: a ring that no window touches
    rng = np.random.default_rng(0)
    patches = (rng.standard_normal((1, 4, N, N)) + 1j * rng.standard_normal((1, 4, N, N))).astype(np.complex64)
    patches[0, 2, 5:9, 5:9] = 1e6  # huge values somewhere
    canvas = reassemble_groups(patches, ox, oy, size).numpy()[0]
    support = np.real(place_patches(np.ones_like(patches), *canvas_positions(ox, oy, size), size, size).numpy()[0])
    outside = support == 0
    assert outside.sum() > 4 * size  # the test really has unsupported pixels
    assert np.all(canvas[outside] == 0)
    assert np.abs(canvas).max() <= np.abs(patches).max() * (1 + EXACT_RTOL)
    # a pixel covered by one member alone holds exactly that member's value
    if not subpixel:
        px, py = canvas_positions(ox, oy, size)
        r0, c0 = int(py[0, 0] - (N - 1) / 2), int(px[0, 0] - (N - 1) / 2)
        assert support[r0, c0] == 1
        assert canvas[r0, c0] == pytest.approx(patches[0, 0, 0, 0], rel=EXACT_RTOL)


@pytest.mark.parametrize("gridsize", [2, 3])
def test_canvas_holds_the_largest_offset_without_clipping(gridsize):
    """A patch of ones at the extreme offset (sub-pixel, all four corners) keeps its whole mass on
    the canvas with no pixel above 1 (clipping piles mass onto the edge instead of losing it)."""
    rng = np.random.default_rng(gridsize)
    x, y = rng.uniform(0, 200, 150), rng.uniform(0, 200, 150)
    groups = make_groups(x, y, gridsize)
    max_offset = groups.max_offset
    size = canvas_size(max_offset, N)
    assert size >= N + 2 * max_offset
    for sx in (-1, 1):
        for sy in (-1, 1):
            ones = np.ones((1, 1, N, N), np.complex64)
            ox, oy = np.array([[sx * max_offset]]), np.array([[sy * max_offset]])
            footprint = np.real(place_patches(ones, *canvas_positions(ox, oy, size), size, size).numpy()[0])
            assert footprint.sum() == pytest.approx(N * N, rel=MASS_RTOL)
            assert footprint.max() <= 1 + MASS_RTOL
    # and every real group round-trips through its canvas: windows cut from a smooth object
    worst = int(np.argmax(np.maximum(np.abs(groups.offset_x), np.abs(groups.offset_y)).max(axis=1)))
    g = groups.take([worst])
    obj = np.ones((1, size, size), np.complex64)  # constant: bilinear reads are exact anywhere
    patches = patches_from_objects(obj, g.offset_x, g.offset_y, size)
    out = group_consistent_patches(patches, g.offset_x, g.offset_y, size).numpy()
    np.testing.assert_allclose(out, 1.0, rtol=EXACT_RTOL)


def test_canvas_size_follows_the_offsets():
    assert canvas_size(0.0, N) >= N
    assert canvas_size(10.0, N) < canvas_size(20.0, N)
    assert canvas_size(10.2, 64) >= 64 + 2 * 10.2
    assert canvas_size(10.2, 64) - canvas_size(10.2, 32) == 32


# -- the in-model forward path equals simulate's ---------------------------------------------

@pytest.fixture(scope="module")
def clean_grid_dataset(tmp_path_factory):
    """Noise-free grid scan with an even whole-pixel step: every group centroid of 4 members is
    then a whole pixel too, so the gridsize-2 reassembly is exact."""
    path = tmp_path_factory.mktemp("phys") / "grid.npz"
    config = SimulateConfig(N=N, gridsize=2, noise=False, seed=3, object={"size": 96},
                            scan={"kind": "grid", "n_images": 36, "step_px": 8})
    simulate(config, path, preview=False)
    return path


@pytest.fixture(scope="module")
def clean_random_dataset(tmp_path_factory):
    """Noise-free random scan (sub-pixel positions)."""
    path = tmp_path_factory.mktemp("phys") / "random.npz"
    simulate(SimulateConfig(N=N, noise=False, seed=4, object={"size": 96}, scan={"n_images": 32}), path, preview=False)
    return path


def assert_forward_matches(path, gridsize):
    with load_dataset(path) as ds:
        groups = make_groups(ds.x, ds.y, gridsize)
        gx, gy = groups.positions()
        truth = ds.object[None]
        patches = extract_patches(truth, gx.reshape(1, -1), gy.reshape(1, -1), N).numpy()
        patches = patches.reshape(groups.n_groups, groups.C, N, N)
        size = canvas_size(groups.max_offset, N) if gridsize > 1 else None
        lam = predicted_counts(patches, groups.offset_x, groups.offset_y, ds.probe, size).numpy()
        expected = ds.read_patterns(groups.index.ravel()).reshape(lam.shape)
    assert lam.shape == (groups.n_groups, groups.C, N, N) and lam.dtype == np.float32
    np.testing.assert_allclose(lam, expected, rtol=FORWARD_RTOL, atol=FORWARD_ATOL_FRACTION * expected.max())


@pytest.mark.parametrize("gridsize", [1, 2])
def test_in_model_forward_path_equals_simulate_on_a_grid_scan(clean_grid_dataset, gridsize):
    assert_forward_matches(clean_grid_dataset, gridsize)


def test_in_model_forward_path_equals_simulate_at_subpixel_positions(clean_random_dataset):
    assert_forward_matches(clean_random_dataset, 1)


def test_forward_comparison_detects_a_wrong_object(clean_grid_dataset):
    """Control: with the conjugate object the predicted counts differ from the data."""
    with load_dataset(clean_grid_dataset) as ds:
        groups = make_groups(ds.x, ds.y, 1)
        truth = np.conj(ds.object)[None]
        patches = extract_patches(truth, ds.x[None], ds.y[None], N).numpy().reshape(-1, 1, N, N)
        lam = predicted_counts(patches, groups.offset_x, groups.offset_y, ds.probe, None).numpy()
        expected = ds.read_patterns().reshape(lam.shape)
    assert not np.allclose(lam, expected, rtol=FORWARD_RTOL, atol=FORWARD_ATOL_FRACTION * expected.max())


# -- mixed-state probes ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_mode_grid_dataset(tmp_path_factory):
    """The noise-free grid scan of :func:`clean_grid_dataset` under a two-mode probe."""
    path = tmp_path_factory.mktemp("phys") / "modes.npz"
    config = SimulateConfig(N=N, gridsize=2, noise=False, seed=3, object={"size": 96}, probe={"modes": 2},
                            scan={"kind": "grid", "n_images": 36, "step_px": 8})
    simulate(config, path, preview=False)
    return path


@pytest.mark.parametrize("gridsize", [1, 2])
def test_in_model_forward_path_sums_the_modes_as_simulate_does(two_mode_grid_dataset, gridsize):
    with load_dataset(two_mode_grid_dataset) as ds:
        assert ds.probe.shape == (2, N, N)
    assert_forward_matches(two_mode_grid_dataset, gridsize)


def test_the_group_estimate_fits_two_mode_data_better_with_both_modes(two_mode_grid_dataset):
    from ptycho.models.features import epie_estimate
    from ptycho.physics.modes import mode_powers

    with load_dataset(two_mode_grid_dataset) as ds:
        groups = make_groups(ds.x, ds.y, 2)
        counts = ds.read_patterns(groups.index.ravel()).reshape(groups.n_groups, groups.C, N, N)
        modes = ds.probe
    dominant = (modes[0] * np.sqrt(mode_powers(modes).sum() / mode_powers(modes[0])[0])).astype(np.complex64)
    size = canvas_size(groups.max_offset, N)
    misfit = {}
    for name, probe in (("modes", modes), ("dominant", dominant)):
        estimate = epie_estimate(np.sqrt(counts), probe, groups.offset_x, groups.offset_y, size, 20).numpy()
        predicted = predicted_counts(estimate, groups.offset_x, groups.offset_y, probe, size).numpy()
        misfit[name] = float(np.sum((np.sqrt(predicted) - np.sqrt(counts)) ** 2) / np.sum(counts))
    assert misfit["modes"] < 0.5 * misfit["dominant"], misfit
