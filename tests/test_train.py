"""``ptycho train`` (docs/model.md#training, docs/cli.md): a tiny fit, the NaN guard, ``--resume``, model bundles,
several models in one process, exit codes, legacy data and the ``mirrored`` strategy.

Trainings are tiny (N=32, 64 positions, ``n_filters_scale=1``) and shared through module-scoped
fixtures: TensorFlow's compile time, not the arithmetic, dominates them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ptycho.config.simulate import SimulateConfig
from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.data.grouping import make_groups
from ptycho.data.pipeline import read_group_batch
from ptycho.errors import ConfigError, DataError, NumericalError
from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.models.bundle import BUNDLE_VERSION, REQUIRED_FILES, all_finite, load_bundle, save_bundle
from ptycho.models.features import input_estimate
from ptycho.models.losses import per_group_loss
from ptycho.models.physics import canvas_size
from ptycho.models.pinn import PINN, PhysicsSettings
from ptycho.registry import Components
from ptycho.workflows.simulate import simulate
from ptycho.workflows.train import resolve_model_config, train

N = 32
N_POSITIONS = 64
TINY = ("--batch-size", "8", "--n-filters-scale", "1")
"""CLI flags of every tiny training here (with ``--epochs``)."""
BUNDLE_FILES = ("config.json", "model.weights.h5", "probe.npy", "scale.json", "history.json",
                "manifest.json", "loss.png", "config.yaml")

FIT_EPOCHS = 20
FIT_LEARNING_RATE = 3e-3
FIT_EXCESS_REDUCTION = 10.0
"""The Poisson excess (NLL minus its value at λ = k) must fall at least this much (observed 17–20×)."""
FIT_RESIDUAL_REDUCTION = 2.0
"""... and the relative residual ‖λ − k‖/‖k‖ at least this much (observed 5.6–6.2×)."""
RESUME_RTOL = 1e-5
"""Resumed vs. uninterrupted run on the same CPU: same batches, weights and optimizer state."""
FLOAT32_RTOL = 1e-6
"""Keras keeps the learning rate in a float32 variable."""
MIRRORED_RTOL = 1e-4
"""Two-replica (XLA off) vs. one-device (XLA on) loss: the same mean gradient, summed in another
order (observed ≈ 1e-6)."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensorflow():
    from ptycho._tf import tf

    return tf()


def cli(*args):
    """Run ``ptycho`` in-process (the ``invoke`` fixture, usable from module-scoped fixtures)."""
    from ptycho_cli.app import make_app

    return CliRunner().invoke(make_app(plugins=(), env={}), [str(a) for a in args], catch_exceptions=False)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def group_batch(path, config: ModelConfig, gridsize=1):
    """Every group of a dataset as one batch (counts, offsets, and the estimate ``config`` reads)."""
    with load_dataset(path) as ds:
        groups = make_groups(ds.x, ds.y, gridsize)
        return read_group_batch(ds, groups, np.arange(groups.n_groups), input_estimate(config, ds))


def patches(model, path):
    """The model's object patches for every group of the dataset at ``path``."""
    tf = tensorflow()

    return model.object_patches(*(tf.constant(a) for a in group_batch(path, model.config))).numpy()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Noise-free random scan, N=32, 64 positions, HDF5 (streamed by the trainer)."""
    path = tmp_path_factory.mktemp("data") / "clean.h5"
    simulate(SimulateConfig(N=N, noise=False, seed=1, object={"size": 96}, scan={"n_images": N_POSITIONS}),
             path, preview=False)
    return path


@pytest.fixture(scope="module")
def cli_bundle(dataset, tmp_path_factory):
    """One epoch through the command line with default settings (XLA on): ``(bundle, summary)``."""
    out = tmp_path_factory.mktemp("cli") / "model"
    result = cli("train", dataset, "--out", out, "--epochs", "1", *TINY, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


# -- the command line and the bundle ---------------------------------------------------------

def test_cli_train_writes_a_complete_bundle(cli_bundle, dataset):
    out, summary = cli_bundle
    for name in BUNDLE_FILES:
        assert (out / name).is_file(), f"{name} missing"
    assert summary["epochs"] == 1 and summary["groups"] == N_POSITIONS and summary["NaN recoveries"] == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1] and len(history["loss"]) == 1
    assert all(math.isfinite(v) for v in history["loss"] + history["val_loss"])
    config = json.loads((out / "config.json").read_text())
    assert config["physics"]["N"] == N and config["physics"]["gridsize"] == 1
    assert config["model"]["n_filters_scale"] == 1 and config["train"]["batch_size"] == 8
    # config.yaml is the fully resolved train config, identical to the bundle's
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert TrainConfig.model_validate(resolved["train"]) == TrainConfig.model_validate(config["train"])
    # the manifest hashes every bundle file and records the dataset
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(REQUIRED_FILES) - {"manifest.json"} <= set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest, f"{name} does not match the manifest"
    with load_dataset(dataset) as ds:
        assert manifest["dataset_fingerprint"] == ds.fingerprint()
    assert manifest["epochs"] == 1 and manifest["versions"]["ptycho"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bundle = load_bundle(out)
    assert all_finite(bundle.model) and bundle.history.epochs == 1


def test_bundle_holds_no_pickles(cli_bundle):
    out, _ = cli_bundle
    arrays = sorted(out.glob("*.npy")) + sorted(out.glob("*.npz"))
    assert {p.name for p in arrays} >= {"probe.npy", "optimizer.npz"}
    for path in arrays:
        loaded = np.load(path, allow_pickle=False)
        values = [loaded] if isinstance(loaded, np.ndarray) else [loaded[k] for k in loaded.files]
        assert values and all(v.dtype != object for v in values)
    assert np.load(out / "probe.npy", allow_pickle=False).dtype == np.complex64


@pytest.mark.parametrize(
    "damage, name",
    [("delete", "model.weights.h5"), ("delete", "config.json"), ("modify", "model.weights.h5"),
     ("modify", "probe.npy"), ("modify", "history.json"), ("modify", "scale.json"),
     ("modify", "optimizer.npz")],
)
def test_load_bundle_refuses_a_missing_or_modified_file(cli_bundle, dataset, tmp_path, invoke, damage, name):
    bundle = tmp_path / "model"
    shutil.copytree(cli_bundle[0], bundle)
    target = bundle / name
    if damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit
        target.write_bytes(bytes(data))
    with pytest.raises(DataError, match=name) as excinfo:
        load_bundle(bundle)
    assert excinfo.value.exit_code == 3
    result = invoke("infer", bundle, dataset, "--out", tmp_path / "patches.h5")
    assert result.exit_code == 3
    assert len(error_lines(result)) == 1 and name in error_lines(result)[0]


def older_bundle(source, copy, version: int, removed: tuple[str, ...]):
    """``source``'s bundle copied to ``copy`` as format ``version`` wrote it: its config without the
    model fields that later formats added (``removed``), loaded."""
    shutil.copytree(source, copy)
    config = json.loads((copy / "config.json").read_text())
    assert config["format_version"] == BUNDLE_VERSION
    config["format_version"] = version
    for model in (config["model"], config["train"]["model"]):
        for name in removed:
            del model[name]
    (copy / "config.json").write_text(json.dumps(config))
    return load_bundle(copy, verify=False)


def test_a_version_1_bundle_loads_with_the_group_estimate_it_was_trained_with(cli_bundle, tmp_path):
    """Bundles written before ``model.estimate`` existed (format 1) used the per-group estimate."""
    assert json.loads((cli_bundle[0] / "config.json").read_text())["model"]["estimate"] == "global"
    bundle = older_bundle(cli_bundle[0], tmp_path / "v1", 1, ("estimate", "global_passes"))
    assert bundle.model.config.estimate == "group" and bundle.train_config.model.estimate == "group"


def test_a_version_2_bundle_loads_with_the_single_estimate_it_was_trained_with(cli_bundle, tmp_path):
    """Bundles written before leave-fold-out estimates (format 2) read one estimate of every
    pattern: 2 rPIE passes at alpha 0.1 in minibatches of 8."""
    copy = tmp_path / "v2"
    shutil.copytree(cli_bundle[0], copy)
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 2
    for model in (config["model"], config["train"]["model"]):
        for key in ("estimate_folds", "estimate_alpha", "estimate_batch_size", "global_passes"):
            model.pop(key, None)
    (copy / "config.json").write_text(json.dumps(config))
    model = load_bundle(copy, verify=False).model.config
    assert (model.estimate_folds, model.global_passes, model.estimate_alpha, model.estimate_batch_size) == (0, 2, 0.1, 8)


def test_a_version_4_bundle_loads_with_the_bounded_phase_head_it_was_trained_with(cli_bundle, dataset, tmp_path):
    """Bundles written before ``model.phase_activation`` (format 4) had the π·tanh phase head and
    did not add to the global estimate: the same weights give π·tanh of today's phase."""
    copy = tmp_path / "v4"
    shutil.copytree(cli_bundle[0], copy)
    config = json.loads((copy / "config.json").read_text())
    for model in (config["model"], config["train"]["model"]):
        model["estimate_residual"] = False
    (copy / "config.json").write_text(json.dumps(config))
    today = load_bundle(copy, verify=False).model
    config["format_version"] = 4
    for model in (config["model"], config["train"]["model"]):
        del model["phase_activation"], model["estimate_residual"]
    (copy / "config.json").write_text(json.dumps(config))
    old = load_bundle(copy, verify=False)
    assert old.model.config.phase_activation == "pi_tanh" and not old.model.config.estimate_residual
    assert old.train_config.model.phase_activation == "pi_tanh"
    features = today.features(*(tensorflow().constant(a) for a in group_batch(dataset, today.config)))
    phase_today, phase_old = today.network(features)[1].numpy(), old.model.network(features)[1].numpy()
    assert np.abs(phase_today).max() > 0
    np.testing.assert_allclose(phase_old, np.pi * np.tanh(phase_today), rtol=1e-5, atol=1e-6)


def test_a_version_5_bundle_loads_with_every_estimate_pass_it_was_trained_with(cli_bundle, tmp_path):
    """Bundles written before the held-out continuation (format 5) ran exactly ``global_passes``."""
    copy = tmp_path / "v5"
    shutil.copytree(cli_bundle[0], copy)
    config = json.loads((copy / "config.json").read_text())
    assert config["model"]["estimate_patience"] == 3
    config["format_version"] = 5
    for model in (config["model"], config["train"]["model"]):
        del model["estimate_patience"]
    (copy / "config.json").write_text(json.dumps(config))
    old = load_bundle(copy, verify=False)
    assert old.model.config.estimate_patience == 0 and old.train_config.model.estimate_patience == 0


def test_a_version_7_bundle_loads_with_the_rpie_estimate_it_was_trained_with(cli_bundle, tmp_path):
    """Bundles written before the ML global estimate (format 7) made it by rPIE, whatever the dose."""
    old = older_bundle(cli_bundle[0], tmp_path / "v7", 7, ("estimate_engine", "estimate_ml_iterations"))
    assert old.model.config.estimate_engine == "rpie" and old.train_config.model.estimate_engine == "rpie"
    assert not old.model.config.estimate_by_ml
    # a resumed run starts from the stored settings as that format behaved, so on low-dose data it
    # builds the bundle's rPIE-estimate model again instead of choosing ML and refusing the bundle
    from ptycho.workflows.train_bundle import stored_train_settings

    settings = stored_train_settings(tmp_path / "v7")
    assert settings["model"]["estimate_engine"] == "rpie"
    low = tmp_path / "low.npz"
    simulate(SimulateConfig(N=32, nphotons=1e4, object={"size": 64}, scan={"n_images": 16}), low, preview=False)
    with load_dataset(low) as ds:
        assert resolve_model_config(TrainConfig.model_validate(settings), ds).estimate_engine == "rpie"
        assert resolve_model_config(TrainConfig(), ds).estimate_engine == "ml"


def test_save_then_load_gives_bit_identical_predictions(cli_bundle, dataset, tmp_path):
    first = load_bundle(cli_bundle[0])
    expected = patches(first.model, dataset)
    save_bundle(tmp_path / "copy", first.model, train_config=first.train_config, history=first.history,
                data_info=first.data_info)
    second = load_bundle(tmp_path / "copy")
    np.testing.assert_array_equal(patches(second.model, dataset), expected)
    tf = tensorflow()

    batch = group_batch(dataset, first.model.config)
    counts = [m.predict_counts(*(tf.constant(a) for a in batch)).numpy() for m in (first.model, second.model)]
    np.testing.assert_array_equal(counts[0], counts[1])
    np.testing.assert_array_equal(second.model.probe.numpy(), first.model.probe.numpy())
    assert float(second.model.scale.numpy()) == float(first.model.scale.numpy())


@pytest.mark.parametrize("gridsize", [1, 2])
def test_trainable_probe_and_scale_train_under_xla(dataset, tmp_path, gridsize):
    """The probe learns through the forward model (the ePIE input features are not differentiated,
    which XLA could not compile); the probe and scale in the bundle are the trained ones."""
    config = TrainConfig(model=ModelConfig(n_filters_scale=1, gridsize=gridsize, probe_trainable=True,
                                           scale_trainable=True), epochs=1, batch_size=8, jit=True)
    result = train(config, dataset, tmp_path / "m")
    bundle = load_bundle(tmp_path / "m")
    with load_dataset(dataset) as data:
        initial = data.probe
    trained = bundle.model.probe.numpy()
    assert math.isfinite(result.history["loss"][0]) and all_finite(bundle.model)
    assert not np.allclose(trained, initial)  # the probe moved …
    np.testing.assert_allclose(np.abs(trained), np.abs(initial), atol=0.05 * np.abs(initial).max())  # … a little
    assert float(bundle.model.scale.numpy()) != 1.0


def test_two_models_in_one_process_do_not_interfere(cli_bundle, dataset):
    """A second model with another N, gridsize and photon count is built and trained (two Adam
    steps) between two predictions of the first: the first model's outputs do not change."""
    import keras

    tf = tensorflow()

    first = load_bundle(cli_bundle[0]).model
    before = patches(first, dataset)

    N2, photons = 64, 1e5
    yy, xx = np.mgrid[:N2, :N2] - (N2 - 1) / 2
    probe = np.exp(-(xx**2 + yy**2) / (2 * 8.0**2)).astype(np.complex64)
    probe *= np.sqrt(photons / np.sum(np.abs(probe) ** 2)).astype(np.float32)
    rng = np.random.default_rng(0)
    groups = make_groups(rng.uniform(0, 120, 24), rng.uniform(0, 120, 24), 2)
    size = canvas_size(groups.max_offset, N2)
    config2 = ModelConfig(N=N2, gridsize=2, n_filters_scale=1, estimate="group", epie_iterations=2, seed=7)
    second = PINN(config2, PhysicsSettings.from_probe(probe, 2, size), probe, Components.builtin())
    assert second.physics.counts_norm != first.physics.counts_norm
    counts = tf.constant(rng.poisson(photons / N2**2, (4, N2, N2, 4)).astype(np.float32))
    ox, oy = tf.constant(groups.offset_x[:4]), tf.constant(groups.offset_y[:4])
    no_estimate = tf.zeros((4, N2, N2, 0))
    optimizer = keras.optimizers.Adam(1e-3)
    for _ in range(2):
        with tf.GradientTape() as tape:
            lam = second.predict_counts(counts, ox, oy, no_estimate, training=True)
            loss = tf.reduce_mean(per_group_loss("nll", lam, counts, norm=second.physics.counts_norm, epsilon=1e-8))
        grads = tape.gradient(loss, second.trainable_variables)
        optimizer.apply_gradients(zip(grads, second.trainable_variables))
    assert np.isfinite(float(loss)) and lam.shape == (4, N2, N2, 4)

    np.testing.assert_array_equal(patches(first, dataset), before)
    assert float(first.scale.numpy()) == 1.0 and first.physics.N == N
    # a model loaded after the other exists is the same as the one loaded before it
    np.testing.assert_array_equal(patches(load_bundle(cli_bundle[0]).model, dataset), before)


@pytest.mark.parametrize(
    "flags, field",
    [(("--gridsize", "0"), "train.model.gridsize"), (("--batch-size", "0"), "train.batch_size"),
     (("--set", "epochs=0"), "train.epochs"), (("--loss", "l2"), "train.loss"),
     (("--strategy", "tpu"), "train.strategy"), (("--estimate", "local"), "train.model.estimate")],
)
def test_bad_configs_exit_2_naming_the_field(invoke, dataset, tmp_path, flags, field):
    result = invoke("train", dataset, "--out", tmp_path / "m", *flags)
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and field in lines[0]
    assert not (tmp_path / "m").exists()


def test_model_size_that_the_data_does_not_match_exits_3(invoke, dataset, tmp_path):
    result = invoke("train", dataset, "--out", tmp_path / "m", "--N", "64")
    assert result.exit_code == 3
    lines = error_lines(result)
    assert len(lines) == 1 and "32" in lines[0] and "64" in lines[0]


def test_more_groups_than_positions_without_oversampling_exits_2(invoke, dataset, tmp_path):
    result = invoke("train", dataset, "--out", tmp_path / "m", "--n-groups", str(2 * N_POSITIONS))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "n_groups" in lines[0] and "oversampl" in lines[0]


def test_resume_continues_from_the_last_epoch(invoke, dataset, tmp_path):
    """1 epoch, then ``--resume`` to 2, equals 2 epochs in one go (history and weights)."""
    flags = ("--no-jit", *TINY)
    assert invoke("train", dataset, "--out", tmp_path / "one", "--epochs", "1", *flags).exit_code == 0
    shutil.copytree(tmp_path / "one", tmp_path / "resumed")
    result = invoke("train", dataset, "--out", tmp_path / "resumed", "--epochs", "2", "--resume", *flags)
    assert result.exit_code == 0, result.output
    assert invoke("train", dataset, "--out", tmp_path / "straight", "--epochs", "2", *flags).exit_code == 0

    one, resumed, straight = (json.loads((tmp_path / d / "history.json").read_text())
                              for d in ("one", "resumed", "straight"))
    assert resumed["epoch"] == [1, 2]
    for key in ("loss", "val_loss", "learning_rate"):
        assert resumed[key][0] == one[key][0]
        np.testing.assert_allclose(resumed[key], straight[key], rtol=RESUME_RTOL)
    assert resumed["loss"][1] != resumed["loss"][0]
    np.testing.assert_allclose(patches(load_bundle(tmp_path / "resumed").model, dataset),
                               patches(load_bundle(tmp_path / "straight").model, dataset),
                               rtol=RESUME_RTOL, atol=RESUME_RTOL)


def test_resume_without_a_bundle_exits_2(invoke, dataset, tmp_path):
    result = invoke("train", dataset, "--out", tmp_path / "none", "--epochs", "1", "--resume")
    assert result.exit_code == 2 and "--resume" in error_lines(result)[0]


def test_training_on_a_legacy_ptychopinn_npz(invoke, dataset, tmp_path):
    legacy = tmp_path / "legacy.npz"
    with load_dataset(dataset) as ds:
        save_dataset(legacy, ds, format="ptychopinn-npz")
    with np.load(legacy, allow_pickle=False) as raw:
        assert "probeGuess" in raw.files and "xcoords" in raw.files  # really the old layout
    result = invoke("train", legacy, "--out", tmp_path / "m", "--epochs", "1", "--no-jit", *TINY)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(tmp_path / "m")
    assert all_finite(bundle.model) and bundle.history.epochs == 1
    assert bundle.model.physics.N == N
    with load_dataset(legacy) as ds:
        assert ds.fingerprint() == bundle.manifest["dataset_fingerprint"]


# -- fitting ---------------------------------------------------------------------------------

def poisson_excess_and_residual(model, batch):
    """Mean Poisson excess (the training loss, 0 at λ = k) and ‖λ − k‖/‖k‖ over all groups."""
    tf = tensorflow()

    counts, ox, oy, est = (tf.constant(a) for a in batch)
    lam = model.predict_counts(counts, ox, oy, est)
    excess = tf.reduce_mean(per_group_loss("nll", lam, counts, norm=model.physics.counts_norm, epsilon=1e-8))
    residual = np.linalg.norm(lam.numpy() - batch[0]) / np.linalg.norm(batch[0])
    return float(excess), float(residual)


def test_tiny_fit_reduces_the_poisson_excess_tenfold(dataset, tmp_path):
    """End to end on noise-free data (64 positions, gridsize 1): 20 epochs at lr 3e-3 of the plain
    network (``estimate="none"``).

    Measured: the loss is the Poisson excess (NLL minus its minimum at λ = k), evaluated over all
    64 groups for the untrained model (same seed, so the same initial weights) and the trained
    bundle; it must fall ≥ 10× (observed 17–20×, e.g. 0.27 → 0.0135). The default model starts from
    physics estimates near the optimum already (for the group estimate alone: excess ≈ 8e-4, 2.3×
    lower after 15 epochs), so it cannot show a tenfold drop; here the network alone learns the
    inversion.
    """
    tf = tensorflow()

    config = TrainConfig(model=ModelConfig(n_filters_scale=1, estimate="none"), epochs=FIT_EPOCHS,
                         batch_size=8, learning_rate=FIT_LEARNING_RATE, validation_split=0.0,
                         early_stopping_patience=None)
    batch = group_batch(dataset, config.model)
    with load_dataset(dataset) as ds:
        untrained = PINN(resolve_model_config(config, ds), PhysicsSettings.from_probe(ds.probe, 1, None),
                         ds.probe, Components.builtin())
    excess0, residual0 = poisson_excess_and_residual(untrained, batch)

    result = train(config, dataset, tmp_path / "fit")
    assert result.epochs == FIT_EPOCHS and result.nan_recoveries == 0
    assert all(math.isfinite(v) for v in result.history["loss"])
    assert result.history["loss"][-1] < result.history["loss"][0]
    model = load_bundle(tmp_path / "fit").model
    excess1, residual1 = poisson_excess_and_residual(model, batch)
    print(f"Poisson excess {excess0:.4g} -> {excess1:.4g} ({excess0 / excess1:.1f}x); "
          f"residual {residual0:.3g} -> {residual1:.3g}")
    assert excess0 / excess1 >= FIT_EXCESS_REDUCTION
    assert residual0 / residual1 >= FIT_RESIDUAL_REDUCTION  # the predicted patterns approach the data
    # the history's last epoch loss is the same quantity, measured during training
    assert result.history["loss"][-1] == pytest.approx(excess1, rel=0.5)

    counts, ox, oy, est = (tf.constant(a) for a in batch)
    with tf.GradientTape() as tape:
        lam = model.predict_counts(counts, ox, oy, est, training=True)
        loss = tf.reduce_mean(per_group_loss("nll", lam, counts, norm=model.physics.counts_norm, epsilon=1e-8))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    assert any(np.abs(g.numpy()).max() > 0 for g in grads)


# -- the NaN guard ---------------------------------------------------------------------------

def nan_batches(monkeypatch, when):
    """Put NaN into the training batches for which ``when(epoch, step, seen)`` holds, by wrapping
    the pipeline's batch reader (the training code has no test hook). ``.seen`` lists the
    ``(epoch, step)`` of every poisoned batch. Training batches are recognised by the row arrays
    ``batch_rows`` hands out for a shuffled epoch."""
    import ptycho.data.pipeline as pipeline

    where: dict[int, tuple[int, int]] = {}  # id of a row array -> (epoch, step)
    alive: list[np.ndarray] = []  # the tagged arrays, kept so that their ids are not reused
    seen: list[tuple[int, int]] = []
    batch_rows, read_group_batch = pipeline.batch_rows, pipeline.read_group_batch

    def rows_of_epoch(*args, **kwargs):
        rows = batch_rows(*args, **kwargs)
        if kwargs.get("shuffle"):
            where.update({id(r): (kwargs.get("epoch", 0), step) for step, r in enumerate(rows)})
            alive.extend(rows)
        return rows

    def poisoned(dataset, groups, rows, estimate=None):
        counts, *rest = read_group_batch(dataset, groups, rows, estimate)
        if id(rows) in where and when(*where[id(rows)], seen):
            seen.append(where[id(rows)])
            counts = counts.copy()
            counts[0, N // 2, N // 2, 0] = np.nan
        return (counts, *rest)

    monkeypatch.setattr(pipeline, "batch_rows", rows_of_epoch)
    monkeypatch.setattr(pipeline, "read_group_batch", poisoned)
    return types.SimpleNamespace(seen=seen)


def test_one_nan_batch_is_recovered(dataset, tmp_path, monkeypatch):
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=2, batch_size=8, jit=False)
    hook = nan_batches(monkeypatch, lambda epoch, step, seen: epoch == 1 and step == 2 and not seen)
    result = train(config, dataset, tmp_path / "m")
    assert hook.seen == [(1, 2)]
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert history["nan_recoveries"] == 1 and result.nan_recoveries == 1
    assert history["epoch"] == [1, 2] and all(math.isfinite(v) for v in history["loss"] + history["val_loss"])
    # the epoch was redone from the last good weights at half the learning rate
    assert history["learning_rate"][1] == pytest.approx(history["learning_rate"][0] / 2)
    bundle = load_bundle(tmp_path / "m")
    assert all_finite(bundle.model)


def test_persistent_nan_after_a_good_epoch_keeps_that_epoch(dataset, tmp_path, monkeypatch):
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=3, batch_size=8, jit=False,
                         max_nan_recoveries=1)
    hook = nan_batches(monkeypatch, lambda epoch, step, seen: epoch >= 1)
    with pytest.raises(NumericalError) as excinfo:
        train(config, dataset, tmp_path / "m")
    message = str(excinfo.value)
    assert excinfo.value.exit_code == 4
    assert "\n" not in message and "diverged" in message and "epoch 1" in message
    assert "try a lower `train.learning_rate`" in message  # a field, not a flag: the shell maps it
    # epoch 1 was tried twice (the original and one recovery) and never got past its first step;
    # the pipeline reads a few batches ahead, so later steps of a try may have been read too
    assert hook.seen.count((1, 0)) == 2 and {epoch for epoch, _ in hook.seen} == {1}
    bundle = load_bundle(tmp_path / "m")  # the epoch-1 checkpoint, complete and verified
    assert bundle.history.epochs == 1 and all_finite(bundle.model)


def test_repeated_nan_keeps_halving_the_learning_rate(dataset, tmp_path, monkeypatch):
    """Two failed tries of epoch 2 in a row: each retry runs at half the rate of the try before it
    (restoring the optimizer's state must not restore its rate), and the history says so."""
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=2, batch_size=8, jit=False,
                         learning_rate=2e-3, early_stopping_patience=None)
    hook = nan_batches(monkeypatch, lambda epoch, step, seen: epoch == 1 and step == 0 and len(seen) < 2)
    result = train(config, dataset, tmp_path / "m")
    history = result.history
    assert hook.seen == [(1, 0), (1, 0)] and history["nan_recoveries"] == 2
    np.testing.assert_allclose(history["learning_rate"], [2e-3, 5e-4], rtol=FLOAT32_RTOL)  # 2e-3 / 2 / 2
    np.testing.assert_allclose([r["learning_rate"] for r in history["recoveries"]], [2e-3, 1e-3], rtol=FLOAT32_RTOL)
    assert [r["epoch"] for r in history["recoveries"]] == [2, 2]
    assert json.loads((tmp_path / "m" / "history.json").read_text())["recoveries"] == history["recoveries"]


def test_divergence_reports_the_last_rate_that_ran(dataset, tmp_path, monkeypatch):
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=1, batch_size=8, jit=False,
                         learning_rate=3e7, max_nan_recoveries=2)
    nan_batches(monkeypatch, lambda epoch, step, seen: True)
    with pytest.raises(NumericalError) as excinfo:
        train(config, dataset, tmp_path / "m")
    assert "after 2 recoveries" in str(excinfo.value) and "7.5e+06" in str(excinfo.value)  # 3e7 / 2 / 2


def test_unrecoverable_nan_exits_4_and_keeps_the_earlier_bundle(cli_bundle, dataset, tmp_path, invoke, monkeypatch):
    """NaN in every batch through the command line: exit 4, one error line, and the bundle an
    earlier run left in the same ``--out`` (replaced only with ``--force``, and only by a complete
    checkpoint) is untouched and still loads as a finite model."""
    out = tmp_path / "model"
    shutil.copytree(cli_bundle[0], out)
    digests = {p.name: sha256(p) for p in out.iterdir()}
    hook = nan_batches(monkeypatch, lambda epoch, step, seen: True)
    result = invoke("train", dataset, "--out", out, "--epochs", "2", "--no-jit", *TINY,
                    "--set", "max_nan_recoveries=1", "--force")
    assert result.exit_code == 4, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "diverged" in lines[0] and "Traceback" not in result.output
    assert "try a lower --learning-rate" in lines[0]
    assert hook.seen  # the NaN really went in
    assert {p.name: sha256(p) for p in out.iterdir()} == digests
    bundle = load_bundle(out)
    assert all_finite(bundle.model)
    np.testing.assert_array_equal(patches(bundle.model, dataset), patches(load_bundle(cli_bundle[0]).model, dataset))


# -- distribution ----------------------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from ptycho.config.train import ModelConfig, TrainConfig
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import all_finite, load_bundle
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.data.grouping import make_groups
    from ptycho.data.pipeline import read_group_batch
    from ptycho.distribute.strategy import start_distribution
    from ptycho.models.features import input_estimate
    from ptycho.models.training import Trainer
    from ptycho.registry import Components
    from ptycho.workflows.train import train

    dataset, out, JIT = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "jit"
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=1, batch_size=8, strategy="mirrored", jit=JIT)
    strategy = start_distribution("mirrored", config.cluster).strategy
    with load_dataset(dataset) as ds, strategy.scope():
        model_config = config.model.model_copy(update={"N": ds.N, "gridsize": 1})
        model = PINN(model_config, PhysicsSettings.from_probe(ds.probe, 1, None), ds.probe, Components.builtin())
        trainer = Trainer(model, config, strategy)
        groups = make_groups(ds.x, ds.y, 1, seed=0)
        batch = read_group_batch(ds, groups, np.arange(8), input_estimate(model_config, ds))  # what train feeds
    shards = [[int(v.shape[0]) for v in strategy.experimental_local_results(t)] for t in trainer.to_replicas(batch)]
    result = train(config, dataset, out)
    bundle = load_bundle(out)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "shards": shards,
                      "history": result.history, "finite": all_finite(bundle.model)}))
    """
)


def test_mirrored_strategy_on_two_logical_cpus(cli_bundle, dataset, tmp_path):
    """``strategy="mirrored"`` over two logical CPU devices (configured before TensorFlow starts,
    hence a subprocess): each replica gets half of every batch, and one epoch gives the same loss
    as the one-device run of the same config (the ``cli_bundle``), with a finite saved bundle.
    XLA is off in the subprocess only to save its compile time."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(dataset), str(tmp_path / "m"), "no-jit"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["shards"] == [[4, 4]] * 4  # counts, offsets x and y, estimate
    assert report["finite"] and (tmp_path / "m" / "manifest.json").is_file()
    single = json.loads((cli_bundle[0] / "history.json").read_text())
    mirrored = report["history"]
    assert math.isfinite(mirrored["loss"][0])
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=MIRRORED_RTOL)
    np.testing.assert_allclose(mirrored["val_loss"], single["val_loss"], rtol=MIRRORED_RTOL)


# -- slow: gridsize 2 end to end -------------------------------------------------------------

@pytest.mark.slow
def test_gridsize_2_training_through_the_cli(invoke, tmp_path):
    data = tmp_path / "gs2.npz"
    simulate(SimulateConfig(N=N, gridsize=2, noise=False, object={"size": 96}, scan={"n_images": 48}),
             data, preview=False)
    result = invoke("train", data, "--out", tmp_path / "m", "--epochs", "2", *TINY)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(tmp_path / "m")
    assert bundle.model.physics.gridsize == 2 and bundle.model.physics.canvas_size >= N
    assert all_finite(bundle.model) and bundle.history.epochs == 2
    assert bundle.history.loss[1] < bundle.history.loss[0]


@pytest.mark.parametrize(("photons", "modes", "engine"), [(1e4, 1, "ml"), (1e4, 2, "rpie"), (1e6, 1, "rpie")])
def test_the_estimate_engine_follows_the_dose_and_the_probe_unless_set(tmp_path, photons, modes, engine):
    """Unset, ``model.estimate_engine`` is ml below ``ML_ESTIMATE_MAX_PHOTONS`` photons per pattern
    with a one-mode probe (the ML engine takes one), else rpie; a value given is kept."""
    from ptycho.config.train import ML_ESTIMATE_MAX_PHOTONS

    path = tmp_path / "d.npz"
    simulate(SimulateConfig(N=32, nphotons=photons, object={"size": 64}, scan={"n_images": 16},
                            probe={"modes": modes}), path, preview=False)
    with load_dataset(path) as ds:
        assert np.ndim(ds.probe) == (2 if modes == 1 else 3)
        assert resolve_model_config(TrainConfig(), ds).estimate_engine == engine
        assert (photons < ML_ESTIMATE_MAX_PHOTONS and modes == 1) is (engine == "ml")
        assert resolve_model_config(TrainConfig(model={"estimate_engine": "rpie"}), ds).estimate_engine == "rpie"
        ml = TrainConfig(model={"estimate_engine": "ml"})
        if modes == 1:
            assert resolve_model_config(ml, ds).estimate_engine == "ml"
        else:  # refused before any pass runs, naming the field
            with pytest.raises(ConfigError, match=r"`train.model.estimate_engine` = ml\), which takes a one-mode probe"):
                resolve_model_config(ml, ds)
            assert resolve_model_config(ml.model_copy(update={"model": ml.model.model_copy(
                update={"estimate": "none"})}), ds).estimate_engine == "ml"  # no global estimate: nothing to refuse


def test_ml_estimate_with_a_mixed_state_probe_exits_2_before_any_pass(invoke, tmp_path):
    path = tmp_path / "modes.npz"
    simulate(SimulateConfig(N=32, nphotons=1e4, object={"size": 64}, scan={"n_images": 16}, probe={"modes": 2}),
             path, preview=False)
    result = invoke("train", path, "--out", tmp_path / "m", "--epochs", "1", "--set", "model.estimate_engine=ml")
    assert result.exit_code == 2, result.output
    assert "estimate_engine" in result.stderr and "2 modes" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("photons", "residual"), [(1e4, False), (1e6, True)])
def test_the_residual_decoders_follow_the_dose_unless_set(tmp_path, photons, residual):
    """Unset, ``model.estimate_residual`` is decided from the data's photons per pattern
    (``RESIDUAL_MIN_PHOTONS``); a value given is kept. The untrained residual network returns its
    estimate exactly (zero-initialised last convolutions)."""
    from ptycho.config.train import RESIDUAL_MIN_PHOTONS

    path = tmp_path / "d.npz"
    simulate(SimulateConfig(N=32, nphotons=photons, object={"size": 64}, scan={"n_images": 16}), path, preview=False)
    with load_dataset(path) as ds:
        assert resolve_model_config(TrainConfig(), ds).estimate_residual is residual
        assert (photons >= RESIDUAL_MIN_PHOTONS) is residual
        for given in (True, False):
            assert resolve_model_config(TrainConfig(model={"estimate_residual": given}), ds).estimate_residual is given
        config = resolve_model_config(TrainConfig(model={"n_filters_scale": 1, "estimate_residual": True}), ds)
        model = PINN(config, PhysicsSettings(32, 1, photons, 1.0, None), np.asarray(ds.probe), Components.builtin())
        counts, ox, oy, estimate = group_batch(path, config)
    tf = tensorflow()
    patches = model.object_patches(*(tf.constant(a) for a in (counts, ox, oy, estimate))).numpy()[:, 0]
    windows = estimate[..., 0] + 1j * estimate[..., 1]
    np.testing.assert_allclose(patches, windows, rtol=2e-3, atol=2e-3)
