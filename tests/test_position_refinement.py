"""Position refinement in ``train`` and ``infer`` (docs/positions.md): scans whose positions carry
known errors (σ = 0.7 px, not told to the solver) come back closer to the truth; the bundle stores
the refined training positions, groups and the network's input are made at them, the patches file
carries them to ``stitch`` and ``export-ptychodus``; bundles of format 3 still load."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ptycho.config.simulate import SimulateConfig
from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.workflows.simulate import simulate

pytestmark = pytest.mark.filterwarnings("ignore:.*probe window outside:UserWarning")

N, SIZE, POSITIONS = 32, 96, 128
SIGMA_PX = 0.7
"""Standard deviation of the position errors the solver is not told."""
REDUCTION = 0.4
"""Refined RMS error at most this fraction of the starting one (measured with the default 40
passes: 1.01 → 0.25 px on the training scan, 1.03 → 0.22 px on the new scan infer refines)."""
MEAN_ATOL = 1e-9
TINY = ("--no-jit", "--batch-size", "8", "--n-filters-scale", "1", "--set", "validation_split=0",
        "--quiet")
EXPORT = ("--photon-energy-ev", "8000", "--detector-distance-m", "2", "--pixel-size-m", "1e-8")


def rms_error(x, y, x_true, y_true):
    """Radial RMS of the position error, its mean removed (a common shift is the object's)."""
    ex, ey = np.asarray(x) - x_true, np.asarray(y) - y_true
    return float(np.sqrt(np.mean((ex - ex.mean()) ** 2 + (ey - ey.mean()) ** 2)))


def perturbed_scan(folder, seed):
    """A Poisson-noisy N=32 scan, saved with its positions moved by N(0, σ²) errors; returns the
    saved path and the true positions."""
    truth = folder / f"truth{seed}.npz"
    simulate(SimulateConfig(N=N, nphotons=1e6, seed=seed, object={"kind": "lines", "size": SIZE},
                            scan={"n_images": POSITIONS}), truth, preview=False)
    with load_dataset(truth) as ds:
        rng = np.random.default_rng(100 + seed)
        x_true, y_true = ds.x.copy(), ds.y.copy()
        moved = replace(ds, diffraction=ds.read_patterns(), x=ds.x + rng.normal(0, SIGMA_PX, POSITIONS),
                        y=ds.y + rng.normal(0, SIGMA_PX, POSITIONS),
                        metadata={**ds.metadata, "photon_energy_eV": 8000.0, "detector_distance_m": 2.0,
                                  "pixel_size_m": 1e-8})
        path = save_dataset(folder / f"moved{seed}.npz", moved)
    return path, x_true, y_true


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One bundle trained with ``--refine-positions`` on a perturbed scan, with what ``train``
    handed to grouping and to the input estimate recorded."""
    from ptycho_cli.app import make_app
    from typer.testing import CliRunner

    import ptycho.models.features as features
    import ptycho.workflows.train as train_module

    folder = tmp_path_factory.mktemp("positions")
    data, x_true, y_true = perturbed_scan(folder, seed=1)
    seen = {}
    make_groups, input_estimate = train_module.make_groups, features.input_estimate

    def groups_spy(x, y, *args, **kwargs):
        seen["groups"] = (np.array(x), np.array(y))
        return make_groups(x, y, *args, **kwargs)

    def estimate_spy(model_config, dataset):
        seen["estimate"] = (np.array(dataset.x), np.array(dataset.y))
        return input_estimate(model_config, dataset)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "make_groups", groups_spy)
        mp.setattr(features, "input_estimate", estimate_spy)
        result = CliRunner().invoke(make_app(env={}), ["train", str(data), "--out", str(folder / "model"),
                                                       "--refine-positions", "--epochs", "1", *TINY],
                                     catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder, data, x_true, y_true, seen


def test_train_refine_positions_reduces_known_errors_and_the_bundle_stores_them(trained):
    from ptycho.models.bundle import load_bundle

    folder, data, x_true, y_true, seen = trained
    bundle = load_bundle(folder / "model")
    positions = bundle.positions
    with load_dataset(data) as ds:
        np.testing.assert_array_equal(positions.x0, ds.x)  # the dataset's, unchanged on disk
        np.testing.assert_array_equal(positions.y0, ds.y)
        before = rms_error(ds.x, ds.y, x_true, y_true)
    after = rms_error(positions.x, positions.y, x_true, y_true)
    assert before > 0.8 and after < REDUCTION * before, (before, after)
    offsets = np.concatenate([positions.x - positions.x0, positions.y - positions.y0])
    assert abs(np.mean(positions.x - positions.x0)) < MEAN_ATOL and np.abs(offsets).max() <= 2.0
    assert bundle.train_config.refine_positions and bundle.manifest["format_version"] >= 4
    assert bundle.data_info["position_rms_shift_px"] == pytest.approx(float(np.sqrt(np.mean(positions.shifts**2))))
    assert (folder / "model" / "refinement.png").is_file()
    for used in ("groups", "estimate"):  # grouping and the network's input are made at the refined positions
        np.testing.assert_array_equal(seen[used][0], positions.x)
        np.testing.assert_array_equal(seen[used][1], positions.y)


def test_resume_trains_on_the_stored_positions_and_refuses_a_bundle_without_them(trained, invoke, tmp_path):
    import shutil

    import ptycho.workflows.train as train_module
    from ptycho.models.bundle import load_bundle, read_positions

    folder, data, *_ = trained
    copy = tmp_path / "model"
    shutil.copytree(folder / "model", copy)
    stored = read_positions(copy)
    with pytest.MonkeyPatch.context() as mp:  # nothing is refined again
        mp.setattr(train_module, "refine_iteratively", lambda *a, **k: pytest.fail("refined again on resume"))
        result = invoke("train", data, "--out", copy, "--refine-positions", "--resume", "--epochs", "2", *TINY)
    assert result.exit_code == 0, result.output
    again = load_bundle(copy)
    assert again.history.epochs == 2
    np.testing.assert_array_equal(again.positions.x, stored.x)

    plain = tmp_path / "plain"
    assert invoke("train", data, "--out", plain, "--epochs", "1", *TINY).exit_code == 0
    assert not (plain / "positions.npz").exists() and load_bundle(plain).positions is None
    refused = invoke("train", data, "--out", plain, "--refine-positions", "--resume", "--epochs", "2", *TINY)
    assert refused.exit_code == 2, refused.output
    assert "stores no refined positions; resume without --refine-positions" in refused.output


def test_infer_refine_positions_writes_them_for_stitch_and_export(trained, invoke, tmp_path):
    from ptycho.io.objects import read_object
    from ptycho.io.patches import read_patches
    from ptycho.io.ptychodus import read_ptychodus_product

    folder, *_ = trained
    scan, x_true, y_true = perturbed_scan(tmp_path, seed=2)  # a new scan for the trained model
    patches = tmp_path / "patches.h5"
    result = invoke("infer", folder / "model", scan, "--out", patches, "--refine-positions", "--no-jit", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["positions"].startswith("refined: 40 rPIE passes")
    pf = read_patches(patches)
    assert pf.refined_positions
    refined = pf.pattern_positions()
    assert list(refined.index) == list(range(POSITIONS))
    with load_dataset(scan) as ds:
        x0, y0 = ds.x.copy(), ds.y.copy()
    before, after = rms_error(x0, y0, x_true, y_true), rms_error(refined.x, refined.y, x_true, y_true)
    assert after < REDUCTION * before, (before, after)
    assert abs(np.mean(refined.x - x0)) < MEAN_ATOL and pf.provenance["position_rms_shift_px"] > 0.3

    obj = tmp_path / "object.npz"
    assert invoke("stitch", patches, "--out", obj, "--quiet").exit_code == 0
    image = read_object(obj)
    np.testing.assert_array_equal(image.positions.x, refined.x)  # stitch records where it placed the patches
    np.testing.assert_array_equal(image.positions.y, refined.y)
    product = tmp_path / "product.h5"
    exported = invoke("export-ptychodus", obj, "--dataset", scan, "--out", product, *EXPORT, "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["positions from"].startswith("object (refined")
    back = read_ptychodus_product(product)
    np.testing.assert_allclose(back.x, refined.x - image.origin_x, atol=1e-6)

    plain = tmp_path / "plain.h5"
    assert invoke("infer", folder / "model", scan, "--out", plain, "--no-jit", "--quiet").exit_code == 0
    kept = read_patches(plain)
    assert not kept.refined_positions
    np.testing.assert_array_equal(kept.pattern_positions().x, x0)  # without the flag, the dataset's


def test_a_format_3_bundle_loads_and_infers(trained, invoke, tmp_path):
    """A bundle written before positions were refined (format 3: no ``positions.npz``, no
    position fields in its train config) loads with no stored positions and still infers."""
    import hashlib
    import shutil

    from ptycho.models.bundle import load_bundle

    folder, data, *_ = trained
    old = tmp_path / "old"
    shutil.copytree(folder / "model", old)
    (old / "positions.npz").unlink()
    config = json.loads((old / "config.json").read_text())
    config["format_version"] = 3
    for key in ("refine_positions", "position_init_passes", "position_max_shift_px"):
        del config["train"][key]
    (old / "config.json").write_text(json.dumps(config))
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["format_version"] = 3
    del manifest["files"]["positions.npz"]
    manifest["files"]["config.json"] = hashlib.sha256((old / "config.json").read_bytes()).hexdigest()
    (old / "manifest.json").write_text(json.dumps(manifest))
    bundle = load_bundle(old)
    assert bundle.positions is None and not bundle.train_config.refine_positions
    assert invoke("infer", old, data, "--out", tmp_path / "p.h5", "--no-jit", "--quiet").exit_code == 0


@pytest.mark.parametrize("command", ["train", "infer"])
def test_too_few_refinement_passes_exit_2_naming_the_field(invoke, tmp_path, command):
    args = ("train", tmp_path / "d.npz", "--out", tmp_path / "m") if command == "train" else (
        "infer", tmp_path / "m", tmp_path / "d.npz", "--out", tmp_path / "p.h5")
    result = invoke(*args, "--refine-positions", "--set", "position_init_passes=5")
    assert result.exit_code == 2, result.output
    assert f"{command}.position_init_passes: Input should be greater than or equal to 11" in result.output
