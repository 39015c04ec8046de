"""``ptycho infer`` and the whole pipeline at tiny size: ragged batches, legacy input,
determinism, compatibility checks, and the README's main job."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptycho.config import SimulateConfig
from ptycho.config.infer import InferConfig
from ptycho.config.train import TrainConfig
from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.physics.probe import effective_diameter_px
from ptycho.workflows.infer import infer
from ptycho.workflows.simulate import simulate
from ptycho.workflows.train import train

TINY = dict(N=32, object={"size": 80}, gridsize=2)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A gridsize-2 bundle trained for one epoch on 48 positions, plus a test scan of 37."""
    root = tmp_path_factory.mktemp("infer")
    simulate(SimulateConfig(**TINY, scan={"n_images": 48}), root / "train.h5", preview=False)
    simulate(SimulateConfig(**TINY, scan={"n_images": 37, "seed": 5}), root / "test.h5", preview=False)
    train(TrainConfig(epochs=1, batch_size=8, model={"n_filters_scale": 1}), root / "train.h5", root / "model")
    return root


def _read_patches(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("patches", "x", "y", "index")}, dict(f.attrs)


def test_ragged_last_batch_and_positions(trained, tmp_path):
    result = infer(InferConfig(batch_size=16), trained / "model", trained / "test.h5", tmp_path / "p.h5")
    data, attrs = _read_patches(tmp_path / "p.h5")
    assert result.n_groups == 37 and data["patches"].shape == (37, 4, 32, 32)
    assert np.all(np.isfinite(data["patches"]))
    assert attrs["gridsize"] == 2 and attrs["N"] == 32
    with load_dataset(trained / "test.h5") as ds:
        np.testing.assert_allclose(data["x"], ds.x[data["index"]], atol=1e-9)
        np.testing.assert_allclose(data["y"], ds.y[data["index"]], atol=1e-9)
    provenance = json.loads(attrs["provenance"])
    assert provenance["model"].endswith("model") and provenance["dataset_fingerprint"]
    # trained with the dataset's probe and no mask: the new scan's probe, and no mask
    assert (provenance["probe"], provenance["mask"]) == (result.probe, result.mask) == ("dataset", "none")
    with load_dataset(trained / "test.h5") as ds:  # what stitch's default crop follows
        assert provenance["probe_diameter_px"] == pytest.approx(effective_diameter_px(np.asarray(ds.probe)))
    # the passes each fold's input estimate ran (held-out continuation), as the result reports them
    assert provenance["estimate_passes"] == list(result.estimate_passes) and len(result.estimate_passes) == 2
    assert all(1 <= k <= 40 for k in result.estimate_passes)
    assert provenance["estimate_passes_run"] == list(result.estimate_passes_run)
    assert all(k <= run <= 40 for k, run in zip(result.estimate_passes, result.estimate_passes_run))
    assert provenance["estimate_engine"] == result.estimate_engine == "rpie"  # 1e9 photons: rPIE's


def test_stage_times_account_for_the_whole_call(trained, tmp_path, monkeypatch):
    import ptycho.models.features as features

    real, calls = features.input_estimate, []

    def slow_estimate(config, dataset):  # a known pre-pass cost must land in the estimate stage
        calls.append(config.estimate)
        time.sleep(0.3)
        return real(config, dataset)

    monkeypatch.setattr(features, "input_estimate", slow_estimate)
    t0 = time.perf_counter()
    result = infer(InferConfig(batch_size=16), trained / "model", trained / "test.h5", tmp_path / "p.h5")
    wall = time.perf_counter() - t0
    stages = result.stage_seconds
    assert set(stages) == {"load", "prepare", "estimate", "network", "io"} and calls == ["global"]
    assert all(v >= 0 for v in stages.values()) and stages["estimate"] >= 0.3
    assert stages["network"] == result.inference_seconds
    assert sum(stages.values()) == pytest.approx(result.seconds, rel=1e-9) and result.seconds <= wall


def test_same_bundle_and_data_give_identical_patches_whatever_the_batch(trained, tmp_path):
    infer(InferConfig(batch_size=16), trained / "model", trained / "test.h5", tmp_path / "a.h5")
    infer(InferConfig(batch_size=16), trained / "model", trained / "test.h5", tmp_path / "b.h5")
    a, _ = _read_patches(tmp_path / "a.h5")
    b, _ = _read_patches(tmp_path / "b.h5")
    np.testing.assert_array_equal(a["patches"], b["patches"])


def test_gridsize_2_writes_each_members_window_of_the_group_average(trained, tmp_path):
    """What the loss compared with the counts: the network's own patches, overlap-averaged per group
    and re-extracted (recomputed here from the raw patches and the file's positions)."""
    import tensorflow as tf

    from ptycho.models.physics import canvas_size, group_consistent_patches

    infer(InferConfig(batch_size=16, group_average=True), trained / "model", trained / "test.h5", tmp_path / "avg.h5")
    infer(InferConfig(batch_size=16, group_average=False), trained / "model", trained / "test.h5", tmp_path / "raw.h5")
    averaged, attrs_avg = _read_patches(tmp_path / "avg.h5")
    raw, attrs_raw = _read_patches(tmp_path / "raw.h5")
    assert json.loads(attrs_avg["provenance"])["group_average"] is True
    assert json.loads(attrs_raw["provenance"])["group_average"] is False
    np.testing.assert_array_equal(averaged["x"], raw["x"])
    ox = raw["x"] - raw["x"].mean(axis=1, keepdims=True)  # member offsets from the group centroid
    oy = raw["y"] - raw["y"].mean(axis=1, keepdims=True)
    size = canvas_size(float(max(np.abs(ox).max(), np.abs(oy).max())), 32)
    expected = group_consistent_patches(tf.constant(raw["patches"]), tf.constant(ox, tf.float32),
                                        tf.constant(oy, tf.float32), size).numpy()
    scale = np.abs(raw["patches"]).max()
    np.testing.assert_allclose(averaged["patches"], expected, atol=1e-5 * scale)
    assert np.abs(averaged["patches"] - raw["patches"]).max() > 1e-3 * scale  # the average changes them


@pytest.mark.parametrize(("photons", "given", "expected"), [(1e4, None, True), (1e9, None, False),
                                                            (1e4, False, False), (1e9, True, True)])
def test_the_group_average_follows_the_dose_unless_set(tmp_path, photons, given, expected):
    from ptycho.config.infer import GROUP_AVERAGE_MAX_PHOTONS
    from ptycho.workflows.infer import with_group_average

    simulate(SimulateConfig(**TINY, nphotons=photons, scan={"n_images": 8}), tmp_path / "d.h5", preview=False)
    with load_dataset(tmp_path / "d.h5") as ds:
        assert (effective := with_group_average(InferConfig(group_average=given), ds).group_average) is expected
        if given is None:
            assert effective is bool(np.sum(np.abs(np.asarray(ds.probe)) ** 2) < GROUP_AVERAGE_MAX_PHOTONS)


def test_legacy_npz_gives_the_same_patches(trained, tmp_path):
    with load_dataset(trained / "test.h5") as ds:
        save_dataset(tmp_path / "legacy.npz", ds.subset(np.arange(ds.n_patterns)), format="ptychopinn-npz")
    infer(InferConfig(batch_size=16), trained / "model", trained / "test.h5", tmp_path / "a.h5")
    infer(InferConfig(batch_size=16), trained / "model", tmp_path / "legacy.npz", tmp_path / "b.h5")
    a, _ = _read_patches(tmp_path / "a.h5")
    b, _ = _read_patches(tmp_path / "b.h5")
    # amplitudes → counts squares float32 values: allow a float32 rounding difference
    np.testing.assert_allclose(a["patches"], b["patches"], rtol=1e-4, atol=1e-5)


def test_wrong_pattern_size_is_refused_naming_both(trained, tmp_path, invoke):
    simulate(SimulateConfig(N=64, object={"size": 96}, scan={"n_images": 8}), tmp_path / "big.h5", preview=False)
    result = invoke("infer", trained / "model", tmp_path / "big.h5", "--out", tmp_path / "p.h5")
    assert result.exit_code == 3
    assert "64×64" in result.output and "32×32" in result.output
    assert not (tmp_path / "p.h5").exists()


def test_incompatible_photon_scale_is_refused(trained, tmp_path, invoke):
    simulate(SimulateConfig(**TINY, nphotons=1e4, scan={"n_images": 8}), tmp_path / "dim.h5", preview=False)
    result = invoke("infer", trained / "model", tmp_path / "dim.h5", "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "photons" in result.output


def test_missing_bundle_files_are_clear_errors(trained, tmp_path, invoke):
    broken = tmp_path / "model"
    shutil.copytree(trained / "model", broken)
    (broken / "probe.npy").unlink()
    result = invoke("infer", broken, trained / "test.h5", "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "probe.npy" in result.output
    result = invoke("infer", tmp_path / "nowhere", trained / "test.h5", "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "not found" in result.output
    assert "Traceback" not in result.output


def test_main_job_end_to_end_at_tiny_size(tmp_path, invoke):
    """The README's main job (simulate → train → infer → stitch → evaluate) through the CLI."""
    common = ["--N", "32", "--size", "80", "--gridsize", "2", "--quiet", "--no-preview"]
    assert invoke("simulate", *common, "--n-images", "64", "--out", tmp_path / "train.h5").exit_code == 0
    assert invoke("simulate", *common, "--n-images", "48", "--set", "scan.seed=1", "--out", tmp_path / "test.h5").exit_code == 0
    result = invoke("train", tmp_path / "train.h5", "--out", tmp_path / "model", "--epochs", "1", "--n-filters-scale", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert invoke("infer", tmp_path / "model", tmp_path / "test.h5", "--out", tmp_path / "p.h5", "--quiet").exit_code == 0
    assert invoke("stitch", tmp_path / "p.h5", "--out", tmp_path / "o.npz", "--quiet").exit_code == 0
    result = invoke("evaluate", tmp_path / "o.npz", "--truth", tmp_path / "test.h5", "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert "SSIM" in result.output and "comparison.png" in result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.5 < metrics["amplitude_mean"]["ratio"] < 1.5  # absolute scale, no rescaling
    assert np.isfinite(metrics["phase"]["ssim"])


def test_quickstart_script_is_the_readme_main_job():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash")[1].split("```")[0]
    assert "examples/quickstart.sh" in first_block
    script = (REPO / "examples" / "quickstart.sh").read_text()
    for command in ("simulate", "train", "infer", "stitch", "iterative", "evaluate"):
        assert f"ptycho {command}" in script
    assert "plugins/ptycho-iterative" in first_block  # the main job runs rPIE beside the PINN
    evaluate_line = next(line for line in script.splitlines() if line.startswith("ptycho evaluate"))
    assert "pinn.npz" in evaluate_line and "rpie.npz" in evaluate_line  # scored side by side
    assert subprocess.run(["bash", "-n", str(REPO / "examples" / "quickstart.sh")]).returncode == 0
