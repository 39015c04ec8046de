"""Partial coherence end to end (docs/reconstruction.md#mixed-state-reconstruction): a two-mode
dataset (``simulate --probe-modes 2``, N=32) trains, infers and stitches with every mode in the
PINN's physics layers, and a Ptychodus product of it comes back through ``ptycho import`` with both
modes exactly. (That the physics layers sum the modes' intensities as ``simulate`` does is pinned in
tests/test_physics_layers.py::test_in_model_forward_path_sums_the_modes_as_simulate_does.)"""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.io.datasets import load_dataset
from ptycho.physics.modes import mode_powers
from ptycho.physics.probe import probe_energy

SMALL = ("--N", "32", "--size", "72", "--n-images", "48", "--nphotons", "1e6", "--probe-modes", "2", "--seed", "4",
         "--no-preview", "--quiet")
GAUGE_RTOL = 1e-5
EXPORT = ("--photon-energy-ev", "8000", "--detector-distance-m", "2", "--pixel-size-m", "1e-8")


@pytest.fixture(scope="module")
def two_modes(tmp_path_factory):
    from ptycho_cli.app import make_app
    from typer.testing import CliRunner

    path = tmp_path_factory.mktemp("modes") / "modes.h5"
    result = CliRunner().invoke(make_app(env={}), ["simulate", *SMALL, "--out", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


def test_train_with_probe_refinement_infer_and_stitch_keep_both_modes(two_modes, invoke, tmp_path):
    from ptycho.io.objects import read_object
    from ptycho.io.patches import read_patches
    from ptycho.models.bundle import load_bundle

    with load_dataset(two_modes) as ds:
        modes = ds.probe.copy()
    assert modes.shape == (2, 32, 32) and mode_powers(modes)[1] > 0.2 * mode_powers(modes)[0]
    model = tmp_path / "model"
    result = invoke("train", two_modes, "--out", model, "--epochs", "1", "--no-jit", "--batch-size", "8",
                    "--n-filters-scale", "1", "--refine-probe", "--set", "probe_init_passes=5", "--quiet")
    assert result.exit_code == 0, result.output
    bundle = load_bundle(model)
    refined = bundle.model.probe_variables.numpy()
    assert refined.shape == (2, 32, 32) and np.load(model / "probe.npy").shape == (2, 32, 32)
    assert probe_energy(refined) == pytest.approx(probe_energy(modes), rel=GAUGE_RTOL)  # the gauge holds for the sum
    assert np.all(mode_powers(refined) > 0.05 * probe_energy(refined))  # the weaker mode is not dropped
    assert np.isfinite(bundle.history.loss).all()

    patches = tmp_path / "patches.h5"
    assert invoke("infer", model, two_modes, "--out", patches, "--no-jit", "--quiet").exit_code == 0
    pf = read_patches(patches)
    assert (pf.n_groups, pf.C, pf.N) == (48, 1, 32)
    assert invoke("stitch", patches, "--out", tmp_path / "object.npz", "--quiet").exit_code == 0
    image = read_object(tmp_path / "object.npz")
    assert image.support.mean() > 0.3 and np.isfinite(image.object).all()
    # the patches name the dataset as given (not with the refined probe infer put in), so export pairs them
    product = tmp_path / "product.h5"
    exported = invoke("export-ptychodus", tmp_path / "object.npz", "--dataset", two_modes, "--model", model,
                      "--out", product, *EXPORT, "--quiet")
    assert exported.exit_code == 0, exported.output
    from ptycho.io.ptychodus import read_ptychodus_product

    written = np.asarray(read_ptychodus_product(product).probe, np.complex128)
    assert written.shape == (2, 32, 32)  # the bundle's refined modes, every one
    cosine = abs(np.vdot(written.ravel(), refined.ravel())) / (np.linalg.norm(written) * np.linalg.norm(refined))
    assert cosine == pytest.approx(1.0, abs=1e-5)


def test_a_two_mode_ptychodus_product_imports_back_exactly(two_modes, invoke, tmp_path):
    from ptycho.io.objects import ObjectImage, write_object

    with load_dataset(two_modes) as ds:  # the ground truth as the object (origin 0): positions map back unchanged
        write_object(tmp_path / "truth.npz", ObjectImage(ds.object, np.ones(ds.object.shape, bool), 0.0, 0.0, {}))
        modes, patterns, x, y = ds.probe.copy(), ds.read_patterns(), ds.x.copy(), ds.y.copy()
    run = tmp_path / "run"
    exported = invoke("export-ptychodus", tmp_path / "truth.npz", "--dataset", two_modes, "--out", run / "product.h5",
                      "--with-diffraction", *EXPORT, "--quiet")
    assert exported.exit_code == 0, exported.output
    imported = invoke("import", run, "--out", tmp_path / "back.h5", "--quiet")
    assert imported.exit_code == 0, imported.output
    with load_dataset(tmp_path / "back.h5") as back:
        np.testing.assert_array_equal(back.probe, modes)  # every mode, exactly
        np.testing.assert_array_equal(back.read_patterns(), patterns)
        np.testing.assert_allclose(back.x, x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(back.y, y, rtol=0, atol=1e-9)
        assert back.metadata["probe"]["modes"] == 2
