"""The realistic scenario of the ``realistic`` benchmark section (benchmarks/sections/realistic*.py):
the real scan's geometry, the probe guess, the scores (probe overlap with the free global shift
removed, position errors with the mean shift removed), a tiny scenario built end to end, and the
refinement figure with the truth. The section itself runs in ``test_benchmarks.py`` (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.sections.realistic_arms import position_rms, probe_scores  # noqa: E402
from benchmarks.sections.realistic_scenario import (  # noqa: E402
    GOLD, ScenarioSpec, build_scenario, defocused, fit_probe, probe_overlap, raster_indices, real_positions_px,
    thinned,
)

needs_gold = pytest.mark.skipif(not GOLD.is_file(), reason=f"{GOLD} not present")


def blob(N: int, cx: float, cy: float, width: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[0:N, 0:N]
    return (np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2)) * np.exp(0.3j * xx)).astype(np.complex64)


def test_raster_rows_and_columns_and_the_thinned_interleaved_scans():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:6, 0:7] * 2.5
    x, y = xx.ravel() + rng.normal(0, 0.1, 42), yy.ravel() + rng.normal(0, 0.1, 42)
    rows, cols = raster_indices(x)
    assert np.array_equal(rows, np.repeat(np.arange(6), 7)) and np.array_equal(cols, np.tile(np.arange(7), 6))
    first, second = thinned(x, y, 2, 0, None), thinned(x, y, 2, 1, None)
    assert len(first) == 3 * 4 and len(second) == 3 * 3 and not set(first) & set(second)
    assert np.all(rows[second] % 2 == 1) and np.all(cols[second] % 2 == 1)
    corner = thinned(x, y, 2, 0, 5.5)  # rows and columns 0 and 2 of the raster only
    assert len(corner) == 4


def test_defocus_keeps_the_power_and_zero_defocus_is_the_identity():
    probe = blob(32, 15.5, 15.5)
    assert np.allclose(defocused(probe, 0.0), probe, atol=1e-6)
    out = defocused(probe, 40.0)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(np.abs(probe) ** 2), rel=1e-5)
    assert probe_overlap(out, probe) < 0.9


def test_probe_pad_and_cut_keep_the_centre():
    modes = np.stack([blob(10, 4.5, 4.5), blob(10, 4.5, 4.5, 1.0)])
    padded, cut = fit_probe(modes, 16), fit_probe(modes, 6)
    assert padded.shape == (2, 16, 16) and np.array_equal(padded[:, 3:13, 3:13], modes)
    assert cut.shape == (2, 6, 6) and np.array_equal(cut, modes[:, 2:8, 2:8])


def test_probe_scores_remove_the_global_phase_and_shift_only():
    from ptycho.metrics.registration import apply_shift

    truth = np.stack([blob(48, 23.5, 23.5), 0.2 * blob(48, 23.5, 23.5, 5.0)])
    moved = apply_shift(truth[0], (0.4, -2.3)) * np.exp(1.1j)
    scores = probe_scores(moved, truth)
    assert scores["overlap"] == pytest.approx(1.0, abs=1e-4)
    assert scores["overlap_raw"] < 0.9
    assert scores["shift_px"] == pytest.approx([-0.4, 2.3], abs=0.02)
    assert probe_scores(blob(48, 23.5, 23.5, 6.0), truth)["overlap"] < 0.95  # another probe stays another


def test_position_rms_removes_the_mean_shift():
    rng = np.random.default_rng(1)
    xt, yt = rng.uniform(0, 50, 200), rng.uniform(0, 50, 200)
    assert position_rms(xt + 3.0, yt - 1.0, xt, yt) == pytest.approx(0.0, abs=1e-12)
    dx, dy = rng.normal(0, 0.5, 200), rng.normal(0, 0.5, 200)
    expected = np.sqrt(np.mean((dx - dx.mean()) ** 2 + (dy - dy.mean()) ** 2))
    assert position_rms(xt + dx + 2, yt + dy, xt, yt) == pytest.approx(expected)


def test_window_contrast_follows_the_objects_edges_and_ranks_the_position_errors(tmp_path):
    """A featureless window has zero contrast; one over a phase step has its gradient energy.
    Errors split by contrast quarter: the low-contrast positions carry the big errors here."""
    from benchmarks.sections.realistic_arms import scored_positions, window_contrast
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import save_dataset

    N, size = 16, 96
    obj = np.ones((size, size), np.complex64)
    obj[:, 60:] = np.exp(0.5j)  # one vertical phase step at column 60
    x = np.array([20.5, 25.5, 30.5, 35.5, 58.5, 60.5, 62.5, 64.5])  # whole-pixel windows
    y = np.full(8, 48.0)
    path = tmp_path / "d.h5"
    save_dataset(path, Dataset(np.ones((8, N, N), np.float32), x, y, np.ones((N, N), np.complex64), object=obj))
    contrast = window_contrast(str(path), np.ones((N, N), np.complex64), x, y)
    assert np.all(contrast[:4] == 0) and np.all(contrast[4:] > 0)
    # central differences put |e^{0.5i} − 1|²/4 on the two columns beside the step, N rows each, over Σ|P|² = N²
    assert contrast[5] == pytest.approx(2 * N * (2 - 2 * np.cos(0.5)) / 4 / N**2, rel=1e-5)
    truth = {"test_x_true": x, "test_y_true": y, "test_x_nominal": x, "test_y_nominal": y, "probe": np.ones((N, N))}
    errors = np.array([1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    scores = scored_positions((x + errors, y), truth, "test", str(path))
    assert scores["rms_by_contrast_px"][:2] == pytest.approx([1.0, 1.0]) and scores["rms_by_contrast_px"][2:] == [0.0, 0.0]
    assert scores["rms_px"] == pytest.approx(np.sqrt(0.5))


@needs_gold
def test_the_real_scan_is_a_raster_of_about_40_by_40_at_2_7_px():
    with np.load(GOLD, allow_pickle=False) as gold:
        x, y = real_positions_px(gold)
    rows, cols = raster_indices(x)
    assert len(x) == 1595 and rows.max() + 1 >= 39 and cols.max() + 1 >= 39
    assert 100 < np.ptp(x) < 110 and 100 < np.ptp(y) < 110  # 1.17 µm at 11.1 nm pixels
    assert np.median(np.abs(np.diff(x))) == pytest.approx(2.69, abs=0.05)


@needs_gold
def test_a_tiny_scenario_holds_nominal_positions_a_guessed_probe_and_the_truth_apart(tmp_path):
    from ptycho.io.datasets import load_dataset
    from ptycho.physics.probe import probe_energy

    spec = ScenarioSpec(N=32, dose=1e5, stride=4, extent_px=12.0)
    files = build_scenario(spec, tmp_path)
    truth = dict(np.load(files.truth, allow_pickle=False))
    for scan in ("train", "test"):
        with load_dataset(getattr(files, scan)) as ds:
            assert ds.metadata["probe_is_guess"] is True and ds.metadata["scenario"]["scan"] == scan
            assert np.array_equal(ds.x, truth[f"{scan}_x_nominal"]) and np.array_equal(ds.y, truth[f"{scan}_y_nominal"])
            assert np.array_equal(ds.probe, truth["guess_probe"]) and ds.probe.shape == (2, 32, 32)
            assert probe_energy(ds.probe) == pytest.approx(1e5, rel=1e-4)
            counts = np.asarray(ds.diffraction[:]).sum(axis=(1, 2))
            # a cut 32-px window of the 104-px probe keeps most, not all, of its power
            assert 0.5e5 < counts.mean() < 1.0e5 * 1.5 and np.all(counts == np.round(counts))
        error = np.concatenate([truth[f"{scan}_x_true"] - truth[f"{scan}_x_nominal"],
                                truth[f"{scan}_y_true"] - truth[f"{scan}_y_nominal"]])
        assert 0.2 < error.std() < 1.4 and np.all(error != 0)
    assert not set(zip(truth["train_x_nominal"], truth["train_y_nominal"])) & set(zip(truth["test_x_nominal"], truth["test_y_nominal"]))
    assert probe_overlap(truth["guess_probe"][0], truth["probe"][0]) < 0.9
    assert probe_energy(truth["probe"]) == pytest.approx(1e5, rel=1e-4)


def test_refinement_figure_with_the_truth(tmp_path):
    import matplotlib.image as mpimg

    from ptycho.figures.refinement import RefinementTruth, refinement_figure

    rng = np.random.default_rng(2)
    x0, y0 = rng.uniform(20, 60, 30), rng.uniform(20, 60, 30)
    probe = np.stack([blob(32, 15.5, 15.5), 0.3 * blob(32, 15.5, 15.5, 5.0)])
    truth = RefinementTruth(probe, x0 + rng.normal(0, 0.7, 30), y0 + rng.normal(0, 0.7, 30))
    path = refinement_figure(tmp_path / "check.png", x0=x0, y0=y0, x=truth.x + 0.1, y=truth.y, probe=probe, truth=truth)
    image = mpimg.imread(path)
    plain = mpimg.imread(refinement_figure(tmp_path / "plain.png", x0=x0, y0=y0, x=truth.x, y=truth.y, probe=probe))
    assert image.shape[0] > 1.8 * plain.shape[0] and image.shape[1] == plain.shape[1]  # a second row: the truth
