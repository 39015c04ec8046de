"""Tiny inputs for the fault table (``test_table.py``), built with NumPy and h5py only (no
TensorFlow): datasets, a patches file, an object file, a model bundle made of plain files, and the
hostile files the table feeds the commands; built once per session (:func:`fault_inputs`)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.data.dataset import Dataset, object_fingerprint
from ptycho.io.h5 import write_h5
from ptycho.io.npz import write_npz
from ptycho.io.objects import ObjectImage, write_object
from ptycho.io.patches import PatchesWriter

N = 32
SIZE = 64
M = 16
PHOTONS = 1e6


def probe() -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    field = np.exp(-(xx**2 + yy**2) / (2 * 5.0**2)).astype(np.complex64)
    return (field * np.sqrt(PHOTONS / np.sum(np.abs(field) ** 2))).astype(np.complex64)


def dataset(seed: int = 0, **replace) -> Dataset:
    """A canonical dataset: 16 grid positions inside a 64×64 object, Poisson-like counts."""
    rng = np.random.default_rng(seed)
    obj = (rng.uniform(0.6, 1.0, (SIZE, SIZE)) * np.exp(1j * rng.uniform(0, 1, (SIZE, SIZE)))).astype(np.complex64)
    grid = np.linspace((N - 1) / 2 + 1, SIZE - 1 - (N - 1) / 2 - 1, 4)
    x, y = (a.ravel().astype(np.float64) for a in np.meshgrid(grid, grid))
    fields = dict(diffraction=rng.poisson(PHOTONS / N**2, (M, N, N)).astype(np.float32), x=x, y=y, probe=probe(),
                  object=obj, metadata={"gridsize": 1, "nphotons": PHOTONS})
    fields.update(replace)
    return Dataset(**fields)


def write_patches(path: Path, ds: Dataset, source: Path) -> Path:
    provenance = {"dataset": str(source), "dataset_fingerprint": ds.fingerprint(),
                  "object_fingerprint": object_fingerprint(ds.object), "gridsize": 1, "N": N}
    windows = np.ones((M, 1, N, N), np.complex64)
    with PatchesWriter(path, M, 1, N, provenance, ds.object.shape) as writer:
        writer.write(0, windows, ds.x[:, None], ds.y[:, None], np.arange(M)[:, None])
    return path


def write_stitched(path: Path, ds: Dataset, source: Path) -> Path:
    """An object file as ``stitch`` writes it, recording the dataset it came from."""
    provenance = {"dataset": str(source), "dataset_fingerprint": ds.fingerprint(),
                  "object_fingerprint": object_fingerprint(ds.object)}
    support = np.zeros(ds.object.shape, bool)
    support[8:56, 8:56] = True
    obj = np.where(support, ds.object, 0).astype(np.complex64)
    return write_object(path, ObjectImage(obj, support, 0.0, 0.0, {"provenance": provenance}))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_fake_bundle(folder: Path, *, probe_array: np.ndarray | None = None) -> Path:
    """A bundle of plain files with a valid manifest (weights are not a network: loading fails
    only where a test wants it to, never before the file under test)."""
    folder.mkdir(parents=True, exist_ok=True)
    physics = {"N": N, "gridsize": 1, "probe_photons": PHOTONS, "input_scale": N / np.sqrt(PHOTONS), "canvas_size": None}
    config = {"format": "ptycho-model", "format_version": 2,
              "model": ModelConfig(N=N, gridsize=1, n_filters_scale=1).model_dump(mode="json"),
              "physics": physics, "train": TrainConfig().model_dump(mode="json"), "data": {}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.weights.h5").write_bytes(b"not weights")
    with open(folder / "probe.npy", "wb") as fh:
        np.save(fh, probe() if probe_array is None else probe_array, allow_pickle=probe_array is not None)
    (folder / "scale.json").write_text(json.dumps({"scale_correction": 1.0}))
    (folder / "history.json").write_text(json.dumps({"loss": [1.0]}))
    names = ["config.json", "model.weights.h5", "probe.npy", "scale.json", "history.json"]
    manifest = {"format": "ptycho-model", "format_version": 2, "files": {n: _sha256(folder / n) for n in names}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def write_npz_with_huge_header(path: Path) -> Path:
    """An NPZ whose ``diffraction`` header declares 3.6 TiB but holds no data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 1000, 1000)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("diffraction.npy", header.getvalue())
        for key, value in {"x": np.zeros(3), "y": np.zeros(3), "probe": probe()}.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def write_h5_unallocated(path: Path, n_patterns: int = 10**8) -> Path:
    """An HDF5 dataset declaring ``n_patterns`` chunked patterns of which none were written."""
    with h5py.File(path, "w") as f:
        f.create_dataset("diffraction", shape=(n_patterns, N, N), dtype="f4", chunks=(1, N, N))
        f["x"], f["y"], f["probe"] = np.zeros(3), np.zeros(3), probe()
    return path


def write_h5_huge_positions(path: Path) -> Path:
    """An HDF5 dataset whose ``x`` declares 10^12 values in contiguous storage never written."""
    with h5py.File(path, "w") as f:
        f.create_dataset("diffraction", data=np.ones((2, N, N), np.float32))
        f.create_dataset("x", shape=(10**12,), dtype="f8")
        f["y"], f["probe"] = np.zeros(2), probe()
    return path


def build_inputs(folder: Path) -> Path:
    """Every input of the table in ``folder`` (copied per case)."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = dataset()
    write_h5(folder / "d.h5", ds)
    write_npz(folder / "d.npz", ds)
    write_h5(folder / "other.h5", dataset(seed=1))  # another object
    write_h5(folder / "far.h5", dataset(x=np.where(np.arange(M) == 3, 1e300, dataset().x)))
    nan_counts = ds.diffraction.copy()
    nan_counts[2, 5, 5] = np.nan
    write_h5(folder / "nan.h5", dataset(diffraction=nan_counts))
    no_physics = dataset(metadata={})
    write_h5(folder / "bare.h5", no_physics)
    write_patches(folder / "p.h5", ds, folder / "d.h5")
    write_stitched(folder / "o.npz", ds, folder / "d.h5")
    write_stitched(folder / "o.h5", ds, folder / "d.h5")
    write_stitched(folder / "bare-o.npz", no_physics, folder / "bare.h5")
    write_fake_bundle(folder / "model")
    write_fake_bundle(folder / "pickled-model", probe_array=np.array([{"a": 1}, None], dtype=object))
    write_npz_with_huge_header(folder / "huge.npz")
    write_h5_unallocated(folder / "unwritten.h5")
    write_h5_huge_positions(folder / "huge-x.h5")
    (folder / "afile").write_text("a file, not a folder")
    (folder / "adir.h5").mkdir()
    (folder / "notes").mkdir()
    (folder / "notes" / "mine.txt").write_text("my notes")
    (folder / "link.h5").symlink_to("d.h5")  # relative: the copy of a case folder links to its own
    (folder / "section.yaml").write_text("simulate: 5\n")
    (folder / "long.yaml").write_text("simulate:\n  seed: [" + ", ".join(str(i) for i in range(10_000)) + "]\n")
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (folder / "bomb.yaml").write_text("\n".join(lines) + "\n")  # 9^9 values from 342 bytes
    return folder


@pytest.fixture(scope="session")
def fault_inputs(tmp_path_factory) -> Path:
    """The folder :func:`build_inputs` fills, once per session (cases copy it)."""
    return build_inputs(tmp_path_factory.mktemp("fault-inputs") / "inputs")
