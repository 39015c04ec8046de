"""Detector masks: read, carried by datasets, excluded from the PINN's loss and gradients (a
masked pixel with absurd counts changes nothing), and ``--mask FILE`` on train and infer."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.io.datasets import load_dataset, load_mask, save_dataset

HOT = (5, 9)  # the corrupted pixel: far from the centre of the 32×32 patterns
ABSURD = 1e12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from typer.testing import CliRunner

    from ptycho_cli.app import make_app

    folder = tmp_path_factory.mktemp("mask")
    out = folder / "tiny.npz"
    args = ["simulate", "--N", "32", "--size", "64", "--n-images", "16", "--nphotons", "1e6", "--seed", "5",
            "--no-preview", "--out", str(out), "-q"]
    result = CliRunner().invoke(make_app(env={}), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def variant(source, folder, name, *, absurd, mask):
    """A copy of ``source`` with the HOT pixel set to ABSURD counts (or not), with ``mask``."""
    with load_dataset(source) as ds:
        patterns = ds.read_patterns()
        if absurd:
            patterns[:, HOT[0], HOT[1]] = ABSURD
        ds.diffraction, ds.mask = patterns, mask
        return save_dataset(folder / f"{name}.npz", ds)


def one_hot_invalid():
    valid = np.ones((32, 32), bool)
    valid[HOT] = False
    return valid


def test_mask_files_and_polarity(tmp_path):
    valid = one_hot_invalid()
    np.save(tmp_path / "m.npy", valid.astype(np.uint8))
    np.testing.assert_array_equal(load_mask(tmp_path / "m.npy"), valid)
    np.save(tmp_path / "bits.npy", np.where(valid, 0, 2).astype(np.uint32))  # a CXI-style bit field
    from ptycho.errors import DataError

    with pytest.raises(DataError, match="values other than 0 and 1"):
        load_mask(tmp_path / "bits.npy")
    np.save(tmp_path / "none.npy", np.zeros((32, 32), bool))
    with pytest.raises(DataError, match="no pixel as valid"):
        load_mask(tmp_path / "none.npy")


def test_dataset_mask_round_trips_and_is_validated(tiny, tmp_path):
    path = variant(tiny, tmp_path, "masked", absurd=False, mask=one_hot_invalid())
    with load_dataset(path) as ds:
        np.testing.assert_array_equal(ds.mask, one_hot_invalid())
    from ptycho.errors import DataError

    with pytest.raises(DataError, match="key 'mask' has shape"):
        variant(tiny, tmp_path, "bad", absurd=False, mask=np.ones((16, 16), bool))
        load_dataset(tmp_path / "bad.npz")


def _steps(paths, estimate):
    """For each dataset: the loss before, and the weights after, one training step (one batch),
    all from the same initial weights (one model and trainer, restored between datasets); and the
    loss of the last batch with the HOT pixel at ABSURD counts and no mask anywhere."""
    from ptycho._tf import tf
    from ptycho.config.train import TrainConfig
    from ptycho.data.grouping import make_groups
    from ptycho.data.pipeline import batch_rows, iter_group_batches
    from ptycho.models.losses import per_group_loss
    from ptycho.models.physics import canvas_size
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.models.training import Trainer
    from ptycho.registry import Components

    tf_ = tf()
    config = TrainConfig(epochs=1, batch_size=16, jit=False, model={"N": 32, "gridsize": 1, "estimate": estimate,
                                                                    "n_filters_scale": 1, "epie_iterations": 2})
    results = []
    with load_dataset(paths[0]) as ds:
        groups = make_groups(ds.x, ds.y, 1, seed=0)
        physics = PhysicsSettings.from_probe(ds.probe, 1, canvas_size(groups.max_offset, 32))
        model = PINN(config.model.model_copy(update={"seed": 0}), physics, ds.probe, Components.builtin())
        model.valid_pixels = ds.mask
        trainer = Trainer(model, config, tf_.distribute.get_strategy(), mask=ds.mask)
        start = trainer.snapshot()
    rows = batch_rows(groups.n_groups, 16, shuffle=False)
    for path in paths:
        trainer.restore(start)
        with load_dataset(path) as ds:
            batches = list(iter_group_batches(ds, groups, rows))
        loss = trainer.evaluate(batches)
        trainer.run_epoch(batches, len(rows), 0)
        results.append((loss, [np.array(w) for w in model.network.get_weights()]))
    trainer.restore(start)
    counts, ox, oy, est = batches[0]
    counts = counts.copy()
    counts[:, HOT[0], HOT[1], :] = ABSURD  # what the batch holds without a mask
    lam = model.predict_counts(counts, ox, oy, est)
    unmasked = float(tf_.reduce_mean(per_group_loss("nll", lam, tf_.constant(counts), norm=physics.counts_norm,
                                                    epsilon=1e-8)))
    return results, unmasked


@pytest.mark.parametrize("estimate", ["none", "group"])
def test_masked_absurd_pixel_changes_neither_loss_nor_gradients(tiny, tmp_path, estimate):
    valid = one_hot_invalid()
    clean = variant(tiny, tmp_path, "clean", absurd=False, mask=valid)
    corrupt = variant(tiny, tmp_path, "corrupt", absurd=True, mask=valid)
    [(loss_clean, weights_clean), (loss_corrupt, weights_corrupt)], unmasked = _steps([clean, corrupt], estimate)
    assert np.isfinite(loss_clean) and loss_corrupt == loss_clean
    for a, b in zip(weights_clean, weights_corrupt, strict=True):
        np.testing.assert_array_equal(a, b)  # the same step: the gradients did not see the pixel
    assert not unmasked < 1e3 * loss_clean  # the same counts without the mask: the pixel dominates the loss


def test_per_group_loss_is_a_mean_over_valid_pixels():
    from ptycho._tf import tf
    from ptycho.models.losses import per_group_loss

    tf_ = tf()
    rng = np.random.default_rng(0)
    counts = rng.poisson(20.0, (2, 32, 32, 1)).astype(np.float32)
    predicted = (counts + rng.uniform(0.5, 2.0, counts.shape)).astype(np.float32)
    valid = one_hot_invalid()
    masked = per_group_loss("nll", tf_.constant(predicted), tf_.constant(counts), norm=1.0, epsilon=1e-8,
                            mask=valid).numpy()
    lam, k = predicted[:, valid].astype(np.float64), counts[:, valid].astype(np.float64)
    expected = np.mean(lam - k - k * (np.log(lam + 1e-8) - np.log(k + 1e-8)), axis=(1, 2))
    counts[:, HOT[0], HOT[1]] = ABSURD
    again = per_group_loss("nll", tf_.constant(predicted), tf_.constant(counts), norm=1.0, epsilon=1e-8,
                           mask=valid).numpy()
    np.testing.assert_array_equal(masked, again)
    np.testing.assert_allclose(masked, expected, rtol=1e-5)


def test_mask_flag_on_train_and_infer(invoke, tiny, tmp_path):
    corrupt = variant(tiny, tmp_path, "corrupt_nomask", absurd=True, mask=None)
    np.save(tmp_path / "valid.npy", one_hot_invalid())
    model = tmp_path / "model"
    result = invoke("train", corrupt, "--out", model, "--epochs", "1", "--no-jit", "--estimate", "none",
                    "--mask", tmp_path / "valid.npy", "-q")
    assert result.exit_code == 0, result.output
    import json

    history = json.loads((model / "history.json").read_text())
    assert np.isfinite(history["loss"][0]) and history["loss"][0] < 100  # the 1e12 pixel did not enter
    result = invoke("infer", model, corrupt, "--out", tmp_path / "p.h5", "--mask", tmp_path / "valid.npy", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("train", corrupt, "--out", tmp_path / "m2", "--epochs", "1", "--mask", tmp_path / "nope.npy")
    assert result.exit_code == 3 and "nope.npy: file not found" in result.output


def test_iterative_result_ignores_a_masked_hot_pixel(tiny, tmp_path):
    from ptycho.io.objects import read_object
    from ptycho.iterative.engines import reconstruct
    from ptycho.iterative.streaming import global_estimate
    from ptycho_cli.testing import invoke as invoke_installed

    valid = one_hot_invalid()
    clean = variant(tiny, tmp_path, "clean", absurd=False, mask=valid)
    corrupt = variant(tiny, tmp_path, "corrupt", absurd=True, mask=valid)
    unmasked = variant(tiny, tmp_path, "unmasked", absurd=True, mask=None)
    with load_dataset(clean) as a, load_dataset(corrupt) as b, load_dataset(unmasked) as c:
        ra, rb = (reconstruct(ds, iterations=3, probe_update=True) for ds in (a, b))
        np.testing.assert_array_equal(ra.object, rb.object)
        np.testing.assert_array_equal(ra.probe, rb.probe)
        np.testing.assert_array_equal(ra.errors, rb.errors)
        np.testing.assert_array_equal(global_estimate(a, 2).object, global_estimate(b, 2).object)  # the PINN's input
        rc = reconstruct(c, iterations=3, probe_update=True)
        assert not np.allclose(rc.object, ra.object, atol=1e-3)  # unmasked, the hot pixel does corrupt it
    np.save(tmp_path / "valid.npy", valid)
    result = invoke_installed("iterative", unmasked, "--iterations", "3", "--probe-update", "--mask",
                              tmp_path / "valid.npy", "--no-figures", "--out", tmp_path / "obj.npz", "--quiet")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_object(tmp_path / "obj.npz").object, np.where(ra.support, ra.object, 0))
