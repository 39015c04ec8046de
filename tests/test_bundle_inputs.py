"""What a bundle carries into ``infer`` (bundle format 7, docs/measured-data.md): the probe it was
trained with when that was not the dataset's own (a ``--probe FILE`` without refinement), and the
detector mask training excluded, applied to a new scan that has none. Older bundles keep their
behaviour (the dataset's probe, no mask).

One tiny training (N=32, 48 positions, one epoch) with a probe file and a mask serves every test;
the new scan is another scan of the same simulation settings, with no mask.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import h5py
import numpy as np
import pytest

from ptycho.config import SimulateConfig
from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.models.bundle import BUNDLE_VERSION, load_bundle
from ptycho.workflows.simulate import simulate

TINY = dict(N=32, object={"size": 80})


def beamstop_mask() -> np.ndarray:
    """Valid pixels: all but a 4×4 beamstop at the zero frequency and one hot pixel."""
    valid = np.ones((32, 32), bool)
    valid[14:18, 14:18] = False
    valid[3, 27] = False
    return valid


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ptycho):
    """A bundle trained with ``--probe guess.npz`` (a defocused probe, not the dataset's), no probe
    refinement, and ``--mask valid.npy``; a new unmasked scan ``test.h5``."""
    root = tmp_path_factory.mktemp("bundle-inputs")
    simulate(SimulateConfig(**TINY, scan={"n_images": 48}), root / "train.h5", preview=False)
    simulate(SimulateConfig(**TINY, scan={"n_images": 24, "seed": 5}), root / "test.h5", preview=False)
    simulate(SimulateConfig(N=32, object={"size": 64}, probe={"kind": "ideal", "defocus_rad": 6.0},
                            scan={"n_images": 1}), root / "guess.npz", preview=False)
    np.save(root / "valid.npy", beamstop_mask())
    result = ptycho("train", root / "train.h5", "--out", root / "model", "--epochs", "1", "--batch-size", "8",
                    "--n-filters-scale", "1", "--probe", root / "guess.npz", "--no-refine-probe",
                    "--mask", root / "valid.npy", "-q")
    assert result.exit_code == 0, result.output
    return root


def run_infer(ptycho, model, data, out, *flags):
    """``ptycho infer`` → (patches, provenance, JSON summary)."""
    result = ptycho("infer", model, data, "--out", out, "--json", *flags)
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        return f["patches"][...], json.loads(f.attrs["provenance"]), json.loads(result.stdout)


def test_the_bundle_records_its_probe_file_and_mask(trained):
    bundle = load_bundle(trained / "model")
    assert (bundle.probe_source.source, bundle.probe_source.file) == ("file", str(trained / "guess.npz"))
    assert (bundle.mask.source, bundle.mask.file) == ("file", str(trained / "valid.npy"))
    np.testing.assert_array_equal(bundle.mask.valid, beamstop_mask())
    manifest = json.loads((trained / "model" / "manifest.json").read_text())
    assert "mask.npy" in manifest["files"]
    config = json.loads((trained / "model" / "config.json").read_text())
    assert config["format_version"] == BUNDLE_VERSION and config["mask"]["valid_pixels"] == 32 * 32 - 17
    with load_dataset(trained / "guess.npz") as guess, load_dataset(trained / "train.h5") as ds:
        stored = bundle.model.probe_variables.numpy()
        overlap = abs(np.vdot(stored, guess.probe)) / (np.linalg.norm(stored) * np.linalg.norm(guess.probe))
        assert overlap == pytest.approx(1.0, abs=1e-6)  # the file's probe, at the training gauge
        assert abs(np.vdot(stored, ds.probe)) / (np.linalg.norm(stored) * np.linalg.norm(ds.probe)) < 0.99


def test_infer_uses_the_trained_probe_file_and_mask_without_being_told(trained, ptycho, tmp_path):
    model, scan = trained / "model", trained / "test.h5"
    implicit, provenance, summary = run_infer(ptycho, model, scan, tmp_path / "a.h5")
    assert provenance["probe"] == summary["probe"] == f"model: file {trained / 'guess.npz'}"
    assert provenance["mask"] == summary["mask"] == f"model: file {trained / 'valid.npy'}"
    explicit, provenance, _ = run_infer(ptycho, model, scan, tmp_path / "b.h5", "--probe", trained / "guess.npz",
                                        "--mask", trained / "valid.npy")
    assert provenance["probe"] == f"file {trained / 'guess.npz'}" and provenance["mask"] == f"file {trained / 'valid.npy'}"
    np.testing.assert_array_equal(implicit, explicit)
    # the dataset's own probe (what infer used before format 7) gives another reconstruction
    stale, provenance, _ = run_infer(ptycho, model, scan, tmp_path / "c.h5", "--probe", scan)
    assert provenance["mask"].startswith("model: ")
    assert np.max(np.abs(stale - implicit)) > 1e-3 * np.max(np.abs(implicit))
    # ... and so does measuring every pixel: the training mask was applied
    np.save(tmp_path / "all.npy", np.ones((32, 32), bool))
    unmasked, _, _ = run_infer(ptycho, model, scan, tmp_path / "d.h5", "--mask", tmp_path / "all.npy")
    assert np.max(np.abs(unmasked - implicit)) > 1e-3 * np.max(np.abs(implicit))


def test_a_scan_with_its_own_mask_uses_its_own(trained, ptycho, tmp_path):
    own = np.ones((32, 32), bool)
    own[0, :4] = False
    with load_dataset(trained / "test.h5") as ds:
        ds.diffraction, ds.mask = ds.read_patterns(), own
        save_dataset(tmp_path / "masked.h5", ds)
    np.save(tmp_path / "own.npy", own)
    with_own, provenance, _ = run_infer(ptycho, trained / "model", tmp_path / "masked.h5", tmp_path / "a.h5")
    assert provenance["mask"] == "dataset"
    explicit, provenance, _ = run_infer(ptycho, trained / "model", trained / "test.h5", tmp_path / "b.h5",
                                        "--mask", tmp_path / "own.npy")
    np.testing.assert_array_equal(with_own, explicit)  # its own mask alone: not the union with the bundle's


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_format_6_bundle_keeps_the_datasets_probe_and_no_mask(trained, ptycho, tmp_path):
    """Before format 7 ``infer`` made a non-refined model's input with the dataset's probe, and
    bundles stored no mask: such a bundle still infers so."""
    old = tmp_path / "v6"
    shutil.copytree(trained / "model", old)
    config = json.loads((old / "config.json").read_text())
    config["format_version"] = 6
    del config["probe"], config["mask"]
    (old / "config.json").write_text(json.dumps(config))
    (old / "mask.npy").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"]["mask.npy"]
    manifest["files"]["config.json"] = sha256(old / "config.json")
    (old / "manifest.json").write_text(json.dumps(manifest))
    bundle = load_bundle(old)
    assert bundle.probe_source.source == "dataset" and bundle.mask.valid is None
    patches, provenance, _ = run_infer(ptycho, old, trained / "test.h5", tmp_path / "old.h5")
    assert provenance["probe"] == "dataset" and provenance["mask"] == "none"
    told, _, _ = run_infer(ptycho, old, trained / "test.h5", tmp_path / "told.h5", "--probe", trained / "test.h5")
    np.testing.assert_array_equal(patches, told)  # the dataset's probe, at its own gauge
    today, _, _ = run_infer(ptycho, trained / "model", trained / "test.h5", tmp_path / "today.h5")
    assert not np.array_equal(patches, today)


@pytest.mark.parametrize("command", ["infer", "train"])
def test_a_mask_of_another_shape_exits_3_naming_both_shapes(trained, invoke, tmp_path, command):
    np.save(tmp_path / "small.npy", np.ones((16, 16), bool))
    args = (["infer", trained / "model", trained / "test.h5", "--out", tmp_path / "p.h5"] if command == "infer"
            else ["train", trained / "test.h5", "--out", tmp_path / "m", "--epochs", "1"])
    result = invoke(*args, "--mask", tmp_path / "small.npy")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 3 and len(errors) == 1, result.output
    assert f"{tmp_path / 'small.npy'}: mask is 16×16 but the patterns of {trained / 'test.h5'} are 32×32" in errors[0]
    assert not (tmp_path / "p.h5").exists() and not (tmp_path / "m").exists()


def test_infer_help_says_where_the_default_probe_and_mask_come_from(invoke):
    result = invoke("infer", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # the option table's wrapped help, one line
    assert "[default: the model's when it was trained with a probe file or a refined probe, else the dataset's]" in text
    assert "[default: the dataset's mask; for a dataset without one, the mask the model was trained with" in text
