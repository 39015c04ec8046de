"""``ptycho train`` never loses or silently replaces work (issue 13, items 3 and 4): a non-empty
bundle folder is refused unless ``--resume`` or ``--force``; ``--resume`` honours a new ``--lr``
and otherwise continues the bundle's own schedule; the history records the rates that ran. (The
NaN-recovery rates are tested in ``test_train.py``, beside its batch-poisoning helper.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ptycho.models.bundle import load_bundle

N = 32
TINY = ("--batch-size", "8", "--n-filters-scale", "1", "--no-jit")
FLOAT32_RTOL = 1e-6
"""Keras keeps the learning rate in a float32 variable."""



def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def trained(small_scan, tmp_path_factory, ptycho):
    """One epoch at learning rate 3e-3 through the command line: ``(bundle, result)``."""
    out = tmp_path_factory.mktemp("b") / "model"
    result = ptycho("train", small_scan, "--out", out, "--epochs", "1", "--lr", "3e-3", *TINY)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def bundle(trained) -> Path:
    return trained[0]


def test_training_names_its_preparation_and_logs_every_epoch(trained):
    """Item 16: in a log (not a terminal) each stage of the preparation and each epoch is a line
    of its own; the bar itself keeps only its last state there."""
    lines = trained[1].stderr.splitlines()
    assert any(line.startswith("preparing: reading ") for line in lines)
    assert "preparing: input estimate (global) of 48 positions" in lines
    assert any(line.startswith("preparing: epoch 1: compiling") for line in lines)
    (epoch,) = [line for line in lines if line.startswith("epoch 1/1: loss ")]
    assert "val loss" in epoch and "learning rate 0.003" in epoch


def update_manifest(folder: Path, name: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_config_json_that_does_not_fit_the_weights_is_one_line_exit_3(bundle, small_scan, tmp_path, ptycho):
    """Item 9: Keras lists every variable it could not load (over a hundred lines); the error is
    one line of bounded length."""
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    config = json.loads((work / "config.json").read_text())
    config["model"]["n_filters_scale"] = 2
    (work / "config.json").write_text(json.dumps(config))
    update_manifest(work, "config.json")
    result = ptycho("infer", work, small_scan, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3
    line = error_line(result)
    assert "model.weights.h5: cannot load weights" in line and len(line) <= 500
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.h5").exists()


def test_a_pickled_optimizer_state_exits_3(bundle, small_scan, tmp_path, ptycho):
    """Item 6: an object array in optimizer.npz (allow_pickle is never used) is bad data, not a crash."""
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    np.savez(work / "optimizer.npz", v0000=np.array([{"x": 1}], dtype=object))
    update_manifest(work, "optimizer.npz")
    before = digests(work)
    result = ptycho("train", small_scan, "--out", work, "--epochs", "2", "--resume", *TINY)
    assert result.exit_code == 3 and "optimizer state" in error_line(result)
    assert digests(work) == before


def test_train_refuses_an_existing_bundle_and_leaves_it_untouched(bundle, small_scan, tmp_path, ptycho):
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    before = digests(work)
    result = ptycho("train", small_scan, "--out", work, "--epochs", "1", *TINY)
    assert result.exit_code == 2
    line = error_line(result)
    assert "already holds a model bundle" in line and "resume" in line and "force" in line
    assert digests(work) == before


def test_train_refuses_a_folder_of_other_files_and_a_file(small_scan, tmp_path, ptycho):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = ptycho("train", small_scan, "--out", folder, *TINY)
    assert result.exit_code == 2 and "notes.txt" in error_line(result)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    result = ptycho("train", small_scan, "--out", folder / "notes.txt", *TINY)
    assert result.exit_code == 2 and "is a file" in error_line(result)
    assert (folder / "notes.txt").read_text() == "mine"
    result = ptycho("train", small_scan, "--out", folder, "--resume", "--force", *TINY)
    assert result.exit_code == 2 and "--resume" in error_line(result)


def test_force_replaces_the_bundle_and_keeps_other_files(bundle, small_scan, tmp_path, ptycho):
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    (work / "notes.txt").write_text("mine")
    result = ptycho("train", small_scan, "--out", work, "--epochs", "1", "--lr", "1e-3", "--force", *TINY)
    assert result.exit_code == 0, result.output
    replaced = load_bundle(work)
    assert replaced.train_config.learning_rate == 1e-3 and replaced.history.epochs == 1
    assert (work / "notes.txt").read_text() == "mine"


def test_resume_honours_a_new_learning_rate(bundle, small_scan, tmp_path, ptycho):
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    result = ptycho("train", small_scan, "--out", work, "--epochs", "2", "--resume", "--lr", "5e-3", *TINY)
    assert result.exit_code == 0, result.output
    history = json.loads((work / "history.json").read_text())
    config = json.loads((work / "config.json").read_text())
    assert config["train"]["learning_rate"] == 5e-3
    np.testing.assert_allclose(history["learning_rate"], [3e-3, 5e-3], rtol=FLOAT32_RTOL)


def test_resume_without_a_rate_continues_the_bundles_schedule(bundle, small_scan, tmp_path, ptycho):
    """No ``--lr`` (nor the other settings) on resume: the bundle's settings are the defaults, so
    the run continues at 3e-3, not at the command's default 1e-3."""
    work = tmp_path / "model"
    shutil.copytree(bundle, work)
    result = ptycho("train", small_scan, "--out", work, "--epochs", "2", "--resume", "--no-jit", "--quiet")
    assert result.exit_code == 0, result.output
    history = json.loads((work / "history.json").read_text())
    np.testing.assert_allclose(history["learning_rate"], [3e-3, 3e-3], rtol=FLOAT32_RTOL)
    assert load_bundle(work).train_config.batch_size == 8
    # item 16: --quiet prints the final result only, as its help says
    assert result.stdout == f"trained: {work}\n" and result.stderr == ""


def test_resume_on_bright_data_builds_the_model_the_bundle_holds(small_scan, tmp_path, ptycho):
    """Items 4 and 13 together: on data 4× brighter than a unit object, training raises the
    amplitude head's ceiling above its default 2 and records the raised value in the bundle's
    settings, so ``--resume`` (which layers flags on those settings) builds the same model."""
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import load_dataset
    from ptycho.io.h5 import write_h5

    bright = tmp_path / "bright.h5"
    with load_dataset(small_scan) as ds:
        counts = ds.read_patterns(slice(0, ds.n_patterns)) * 16.0  # |O| × 4 at the same probe
        write_h5(bright, Dataset(counts, ds.x, ds.y, ds.probe, metadata=dict(ds.metadata)))
    work = tmp_path / "model"
    assert ptycho("train", bright, "--out", work, "--epochs", "1", *TINY, "--quiet").exit_code == 0
    stored = json.loads((work / "config.json").read_text())
    assert stored["model"]["amplitude_max"] > 2.0
    assert stored["train"]["model"]["amplitude_max"] == stored["model"]["amplitude_max"]
    result = ptycho("train", bright, "--out", work, "--epochs", "2", "--resume", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    assert load_bundle(work).history.epochs == 2
