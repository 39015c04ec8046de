"""The batch pipeline that feeds training: order, content, the global estimate's
channels and bounded reads."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.data.dataset import Dataset
from ptycho.data.grouping import make_groups
from ptycho.data.pipeline import PREFETCH_BATCHES, batch_rows, read_group_batch, tf_group_batches
from ptycho.iterative.streaming import estimate_folds, global_estimate

N, M = 16, 96


class RecordingPatterns:
    """A lazy pattern store that records how many patterns each read asked for."""

    def __init__(self, data: np.ndarray):
        self._data = data
        self.shape = data.shape
        self.reads: list[int] = []

    def __getitem__(self, key):
        out = self._data[key]
        self.reads.append(int(np.asarray(out).shape[0]))
        return out


def recording_dataset() -> tuple[Dataset, RecordingPatterns]:
    rng = np.random.default_rng(3)
    store = RecordingPatterns(rng.poisson(20.0, (M, N, N)).astype(np.float32))
    x, y = rng.uniform(10, 50, M), rng.uniform(10, 50, M)
    return Dataset(store, x, y, np.ones((N, N), np.complex64)), store


def test_batch_rows_cover_every_group_once_and_shuffle_per_epoch():
    rows0 = batch_rows(50, 8, shuffle=True, seed=1, epoch=0)
    rows1 = batch_rows(50, 8, shuffle=True, seed=1, epoch=1)
    assert sorted(np.concatenate(rows0).tolist()) == list(range(50))
    assert not np.array_equal(np.concatenate(rows0), np.concatenate(rows1))
    np.testing.assert_array_equal(np.concatenate(rows0), np.concatenate(batch_rows(50, 8, shuffle=True, seed=1, epoch=0)))
    dropped = batch_rows(50, 8, shuffle=False, drop_remainder=True)
    assert len(dropped) == 6 and all(len(r) == 8 for r in dropped)


def test_tf_pipeline_yields_the_numpy_batches_in_order():
    dataset, _ = recording_dataset()
    groups = make_groups(dataset.x, dataset.y, 2, seed=0)
    rows = batch_rows(groups.n_groups, 16, shuffle=True, seed=4, epoch=0)
    got = list(tf_group_batches(dataset, groups, rows))
    assert len(got) == len(rows)
    for (counts, ox, oy, est), r in zip(got, rows):
        want, wx, wy, _ = read_group_batch(dataset, groups, r)
        assert counts.shape == (len(r), N, N, 4) and counts.dtype.name == "float32"
        assert est.shape == (len(r), N, N, 0)  # no estimate: no channels
        np.testing.assert_array_equal(counts.numpy(), want)
        np.testing.assert_array_equal(ox.numpy(), wx)
        np.testing.assert_array_equal(oy.numpy(), wy)


def test_tf_pipeline_reads_one_batch_at_a_time_and_only_a_few_ahead():
    dataset, store = recording_dataset()
    groups = make_groups(dataset.x, dataset.y, 1, seed=0)
    rows = batch_rows(groups.n_groups, 8, shuffle=False)
    iterator = iter(tf_group_batches(dataset, groups, rows))
    next(iterator)
    # never more than one batch of patterns per read, and the whole dataset is not read up front
    assert max(store.reads) <= 8
    assert len(store.reads) <= 1 + PREFETCH_BATCHES + 1 < len(rows)


def test_estimate_channels_are_each_members_window_real_then_imaginary():
    dataset, _ = recording_dataset()
    estimate = global_estimate(dataset, 1)
    groups = make_groups(dataset.x, dataset.y, 2, seed=0)
    rows = np.arange(5)
    counts, _, _, est = next(iter(tf_group_batches(dataset, groups, [rows], estimate=estimate)))
    windows = estimate.patches(groups.index[rows])  # (5, 4, N, N)
    assert est.shape == (5, N, N, 8) and est.dtype.name == "float32"
    np.testing.assert_array_equal(est.numpy()[..., :4], windows.real.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(est.numpy()[..., 4:], windows.imag.transpose(0, 2, 3, 1))
    assert np.abs(windows - 1).max() > 0.01  # the estimate moved away from its unit start


def test_global_estimate_streams_the_dataset_a_chunk_at_a_time_and_is_repeatable():
    dataset, store = recording_dataset()
    first = global_estimate(dataset, 2, chunk=8)
    assert max(store.reads) <= 8 and sum(store.reads) == 2 * M  # every pattern, once per pass
    np.testing.assert_array_equal(global_estimate(dataset, 2, chunk=8).object, first.object)
    # the seed orders the minibatches inside a chunk (one chunk of 8 is a single minibatch)
    reordered = [global_estimate(dataset, 2, chunk=32, seed=seed).object for seed in (0, 1)]
    assert not np.array_equal(*reordered)


def test_estimate_folds_are_balanced_and_seeded():
    folds = estimate_folds(101, 2, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [50, 51]
    np.testing.assert_array_equal(folds, estimate_folds(101, 2, seed=3))
    assert not np.array_equal(folds, estimate_folds(101, 2, seed=4))
    assert estimate_folds(101, 1, seed=3) is None and estimate_folds(101, 0, seed=3) is None


@pytest.mark.parametrize("engine", ["rpie", "ml"])
def test_a_leave_fold_out_window_never_contains_its_own_pattern(engine):
    """Position j's input window is made without pattern j (J-invariance): corrupting pattern j
    leaves j's window exactly as it was, and changes the windows of the other fold's positions."""
    dataset, _ = recording_dataset()
    before = global_estimate(dataset, 2, folds=2, alpha=0.5, batch_size=16, engine=engine)
    assert before.engine == engine
    j = 7
    corrupted = np.array(dataset.diffraction[:], dtype=np.float32)
    corrupted[j] *= 9.0
    after = global_estimate(Dataset(corrupted, dataset.x, dataset.y, dataset.probe), 2, folds=2, alpha=0.5,
                            batch_size=16, engine=engine)
    np.testing.assert_array_equal(after.folds, before.folds)
    mine = before.folds == before.folds[j]
    np.testing.assert_array_equal(after.patches(np.flatnonzero(mine)), before.patches(np.flatnonzero(mine)))
    assert np.abs(after.patches(np.flatnonzero(~mine)) - before.patches(np.flatnonzero(~mine))).max() > 1e-3


def test_groups_within_folds_take_every_member_from_the_seeds_fold():
    dataset, _ = recording_dataset()
    folds = estimate_folds(M, 2, seed=0)
    groups = make_groups(dataset.x, dataset.y, 2, labels=folds)
    assert groups.n_groups == M
    assert np.all(folds[groups.index] == folds[groups.index[:, :1]])
    # without labels the nearest neighbours come from both folds
    mixed = make_groups(dataset.x, dataset.y, 2)
    assert np.any(folds[mixed.index] != folds[mixed.index[:, :1]])


def _held_out_misfit(dataset, estimate, fold: int) -> float:
    """``Σ(|F(P·O_j)| − A_j)²`` of fold ``fold``'s own patterns on that fold's estimate."""
    from ptycho.iterative.modulus import measured_modulus, modulus_misfit
    from ptycho.physics.operators.numpy_ops import extract, farfield

    rows = np.flatnonzero(estimate.folds == fold)
    patches = extract(estimate.objects[fold], estimate.windows.take(rows))
    return modulus_misfit(farfield(patches * dataset.probe), measured_modulus(dataset.read_patterns(slice(None))[rows]))


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One 160-position N=32 scan, noise-free and at 1e3 photons per pattern (HDF5 paths)."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.workflows.simulate import simulate

    folder = tmp_path_factory.mktemp("held-out")
    paths = {}
    for name, dose in (("clean", {"noise": False}), ("1e3", {"nphotons": 1e3})):
        paths[name] = folder / f"{name}.h5"
        simulate(SimulateConfig(N=32, seed=3, object={"size": 96}, scan={"n_images": 160}, **dose), paths[name],
                 preview=False)
    return paths


def test_the_held_out_continuation_keeps_each_folds_pass_of_lowest_held_out_misfit(scans):
    """Stopped at pass k, fold f's estimate is exactly the k-pass estimate (same seeded visiting
    order), and none of the ``patience`` passes after it lowered its own patterns' misfit."""
    from ptycho.io.datasets import load_dataset

    patience = 3
    with load_dataset(scans["1e3"]) as dataset:
        stopped = global_estimate(dataset, 1, folds=2, batch_size=16, patience=patience, max_passes=40)
        assert len(stopped.passes) == 2 and all(1 <= k < 40 - patience for k in stopped.passes)
        assert stopped.passes_run == tuple(k + patience for k in stopped.passes)  # the passes that found no better
        for fold, kept in enumerate(stopped.passes):
            fixed = [global_estimate(dataset, n, folds=2, batch_size=16) for n in range(kept, kept + patience + 1)]
            assert fixed[0].passes == (kept, kept)
            np.testing.assert_array_equal(stopped.objects[fold], fixed[0].objects[fold])
            best = _held_out_misfit(dataset, fixed[0], fold)
            assert all(_held_out_misfit(dataset, later, fold) >= best for later in fixed[1:])


def test_the_held_out_continuation_follows_the_dose(scans):
    """Noise-free patterns keep improving the estimate for every pass allowed; at 1e3 photons the
    held-out patterns show it fitting noise within a few passes. The first ``passes`` always run;
    without folds, with patience 0 or with no room above ``passes`` nothing more is run."""
    from ptycho.io.datasets import load_dataset

    with load_dataset(scans["clean"]) as clean, load_dataset(scans["1e3"]) as noisy:
        full = global_estimate(clean, 2, folds=2, batch_size=16, patience=2, max_passes=12)
        assert full.passes == full.passes_run == (12, 12)
        assert max(global_estimate(noisy, 1, folds=2, batch_size=16, patience=2, max_passes=12).passes) <= 5
        assert min(global_estimate(noisy, 6, folds=2, batch_size=16, patience=2, max_passes=12).passes) >= 6
        assert global_estimate(noisy, 6, folds=2, batch_size=16, max_passes=12).passes == (6, 6)
        assert global_estimate(noisy, 6, batch_size=16, patience=2, max_passes=12).passes == (6,)
        assert global_estimate(noisy, 6, folds=2, batch_size=16, patience=2).passes == (6, 6)


def _relative_error(dataset, estimate) -> float:
    """``min_c ‖c·E − O‖ / ‖O‖`` over the central half of every window (estimate ``E``, true
    object ``O``; ``c`` takes the free global phase and scale)."""
    from ptycho.physics.operators.geometry import window_geometry
    from ptycho.physics.operators.numpy_ops import extract

    every, lo, hi = np.arange(dataset.n_patterns), dataset.N // 4, 3 * dataset.N // 4
    windows = window_geometry(np.asarray(dataset.x), np.asarray(dataset.y), dataset.N, 0, 0).take(every)
    truth = extract(np.asarray(dataset.object, np.complex64), windows)[:, lo:hi, lo:hi]
    found = estimate.patches(every)[:, lo:hi, lo:hi]
    scale = np.vdot(found, truth) / np.vdot(found, found)
    return float(np.linalg.norm(scale * found - truth) / np.linalg.norm(truth))


def test_at_low_dose_the_ml_estimate_is_far_closer_to_the_object_than_rpies(scans):
    """At 1e3 photons rPIE fits the Poisson noise (worse after 40 passes than after 10); the ML
    engine (Poisson likelihood, regularised) is far closer to the true object after 20 iterations."""
    from ptycho.io.datasets import load_dataset

    with load_dataset(scans["1e3"]) as dataset:
        rpie = [_relative_error(dataset, global_estimate(dataset, n, folds=2, batch_size=16)) for n in (10, 40)]
        ml = global_estimate(dataset, 20, folds=2, engine="ml")
        assert ml.engine == "ml" and ml.passes == ml.passes_run == (20, 20)
        assert rpie[1] > rpie[0]
        assert _relative_error(dataset, ml) < 0.7 * min(rpie)


def test_the_ml_estimate_refuses_a_mixed_state_probe():
    from ptycho.errors import ConfigError

    dataset, _ = recording_dataset()
    modes = Dataset(dataset.diffraction, dataset.x, dataset.y, np.ones((2, N, N), np.complex64) / np.sqrt(2))
    with pytest.raises(ConfigError, match=r"estimate_engine` = ml\), which takes a one-mode probe.*has 2 modes"):
        global_estimate(modes, 2, folds=2, engine="ml")
