"""Dataset I/O (docs/formats.md#datasets): canonical HDF5/NPZ, PtychoPINN NPZ, validation, atomic writes, probes."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from dataclasses import replace

import h5py
import numpy as np
import pytest

from ptycho.data import validation
from ptycho.data.dataset import Dataset
from ptycho.data.validation import validate_dataset
from ptycho.errors import ConfigError, DataError
from ptycho.io.atomic import atomic_output, write_json_atomic, write_text_atomic
from ptycho.io.datasets import load_dataset, load_probe, save_dataset
from ptycho.io.h5 import FORMAT_NAME, FORMAT_VERSION, H5DatasetWriter, read_h5, write_h5
from ptycho.io.legacy import read_ptychopinn_npz, write_ptychopinn_npz
from ptycho.io.npz import read_npz, write_npz

M, N, H, W = 12, 16, 48, 40
LEGACY_RTOL = 1e-6  # counts → √counts (float32) → counts


def make_dataset(seed: int = 0, *, m: int = M, with_object: bool = True) -> Dataset:
    rng = np.random.default_rng(seed)
    half = (N - 1) / 2
    probe = rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))
    obj = np.exp(1j * rng.uniform(0, 1, (H, W))) * rng.uniform(0.6, 1, (H, W))
    return Dataset(
        diffraction=rng.poisson(50, (m, N, N)).astype(np.float32) + np.float32(0.25),
        x=rng.uniform(half, W - 1 - half, m),
        y=rng.uniform(half, H - 1 - half, m),
        probe=probe.astype(np.complex64),
        object=obj.astype(np.complex64) if with_object else None,
        scan_index=np.arange(m, dtype=np.int64)[::-1].copy(),
        metadata={"seed": seed, "nphotons": 1e6, "energy_eV": np.float64(8000.0), "tags": ["a"]},
    )


def assert_same(a: Dataset, b: Dataset) -> None:
    np.testing.assert_array_equal(a.read_patterns(), b.read_patterns())
    for key in ("x", "y", "probe", "object", "scan_index"):
        va, vb = getattr(a, key), getattr(b, key)
        assert (va is None) == (vb is None), key
        if va is not None:
            assert va.dtype == vb.dtype, key
            np.testing.assert_array_equal(va, vb)
    assert json.loads(json.dumps(a.metadata, default=float)) == b.metadata


def assert_no_files(directory) -> None:
    assert sorted(os.listdir(directory)) == []


# --------------------------------------------------------------------------- round trips


def test_h5_round_trip_is_bit_identical_and_lazy(tmp_path):
    ds = make_dataset()
    path = save_dataset(tmp_path / "data.h5", ds)
    with load_dataset(path) as back:
        assert isinstance(back.diffraction, h5py.Dataset)
        assert back.diffraction.dtype == np.float32
        assert back.diffraction.chunks == (1, N, N)
        assert back.source == str(path)
        assert_same(ds, back)
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT_NAME
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert json.loads(f["metadata"][()].decode())["seed"] == 0
    assert os.listdir(tmp_path) == ["data.h5"]


def test_h5_round_trip_without_optional_keys(tmp_path):
    ds = replace(make_dataset(), object=None, scan_index=None, metadata={})
    write_h5(tmp_path / "d.hdf5", ds)
    with read_h5(tmp_path / "d.hdf5") as back:
        assert back.object is None and back.scan_index is None and back.metadata == {}
        assert_same(ds, back)


def test_write_h5_copies_a_lazy_source_in_chunks(tmp_path):
    ds = make_dataset()
    write_h5(tmp_path / "a.h5", ds)
    with read_h5(tmp_path / "a.h5") as lazy:
        write_h5(tmp_path / "b.h5", lazy, chunk=5, compression="gzip")
    with read_h5(tmp_path / "b.h5") as back:
        assert back.diffraction.compression == "gzip"
        assert_same(ds, back)


def test_npz_round_trip_is_bit_identical(tmp_path):
    ds = make_dataset()
    path = save_dataset(tmp_path / "data.npz", ds)
    back = load_dataset(path)
    assert_same(ds, back)
    with np.load(path, allow_pickle=False) as raw:
        assert raw["metadata"].shape == () and raw["metadata"].dtype.kind == "U"
        expected = {"diffraction", "x", "y", "probe", "object", "scan_index", "metadata"}
        assert set(raw.files) == expected


def test_legacy_round_trip_counts_amplitudes_counts(tmp_path):
    ds = make_dataset()
    path = save_dataset(tmp_path / "legacy.npz", ds, format="ptychopinn-npz")
    with np.load(path, allow_pickle=False) as raw:
        assert raw["diffraction"].shape == (M, N, N) and raw["diffraction"].dtype == np.float32
        np.testing.assert_allclose(raw["diffraction"] ** 2, ds.diffraction, rtol=LEGACY_RTOL)
        np.testing.assert_array_equal(raw["xcoords_start"], ds.x + 0.5)  # the earlier convention
        np.testing.assert_array_equal(raw["ycoords"], ds.y + 0.5)
        assert "probeGuess" in raw.files and "objectGuess" in raw.files
    back = load_dataset(path)
    assert back.metadata["converted_from"] == "ptychopinn-npz"
    np.testing.assert_allclose(back.diffraction, ds.diffraction, rtol=LEGACY_RTOL)
    np.testing.assert_array_equal(back.x, ds.x)
    np.testing.assert_array_equal(back.probe, ds.probe)
    np.testing.assert_array_equal(back.object, ds.object)
    np.testing.assert_array_equal(back.scan_index, ds.scan_index)


def test_read_hand_built_legacy_file_with_nnm_diff3d(tmp_path):
    rng = np.random.default_rng(3)
    m = 5  # != N, so (N, N, M) is recognisable
    amplitudes = rng.uniform(0, 10, (N, N, m)).astype(np.float32)
    probe = (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex128)
    x = np.linspace(10.0, 20.0, m)
    np.savez(
        tmp_path / "old.npz",
        diff3d=amplitudes,
        xcoords=x,
        ycoords=x + 1,
        xcoords_start=x,
        ycoords_start=x + 1,
        probeGuess=probe,
        objectGuess=np.ones((40, 40), np.complex128),
        scan_index=np.arange(m, dtype=np.int32),
    )
    ds = load_dataset(tmp_path / "old.npz")
    assert ds.diffraction.shape == (m, N, N) and ds.diffraction.dtype == np.float32
    for i in range(m):
        np.testing.assert_allclose(ds.diffraction[i], amplitudes[:, :, i] ** 2, rtol=LEGACY_RTOL)
    assert ds.probe.dtype == np.complex64 and ds.x.dtype == np.float64
    assert ds.scan_index.dtype == np.int64
    assert ds.metadata["converted_from"] == "ptychopinn-npz"
    assert ds.metadata["legacy_layout"] == "(N, N, M)"
    np.testing.assert_array_equal(ds.probe, probe.astype(np.complex64))


def test_legacy_negative_amplitudes_are_rejected(tmp_path):
    ds = make_dataset()
    np.savez(tmp_path / "neg.npz", diff3d=-np.ones((M, N, N), np.float32), xcoords=ds.x,
             ycoords=ds.y, probeGuess=ds.probe)
    with pytest.raises(DataError, match="amplitudes"):
        read_ptychopinn_npz(tmp_path / "neg.npz")


def test_direct_npz_writers_and_readers(tmp_path):
    ds = make_dataset(with_object=False)
    write_npz(tmp_path / "c.npz", ds)
    assert_same(ds, read_npz(tmp_path / "c.npz"))
    write_ptychopinn_npz(tmp_path / "l.npz", ds)
    assert read_ptychopinn_npz(tmp_path / "l.npz").object is None


# --------------------------------------------------------------------------- validation


def _with(**changes) -> Dataset:
    return replace(make_dataset(), **changes)


def _nan_diffraction():
    d = make_dataset().diffraction.copy()
    d[3, 2, 1] = np.nan
    return d


def _inf_probe():
    p = make_dataset().probe.copy()
    p[0, 0] = np.inf
    return p


def _negative_diffraction():
    d = make_dataset().diffraction.copy()
    d[7, 0, :3] = -2.0
    return d


INVALID = [
    ("wrong_rank", dict(diffraction=np.zeros((N, N), np.float32)),
     "key 'diffraction' has shape (16, 16) (2-D); expected 3-D (M, N, N)"),
    ("non_square", dict(diffraction=np.zeros((M, N, N + 2), np.float32)),
     "key 'diffraction' has 16×18 patterns; expected square"),
    ("x_rank", dict(x=np.zeros((M, 2))), "key 'x' has shape (12, 2) (2-D); expected 1-D (M,)"),
    ("probe_rank", dict(probe=np.zeros(N, np.complex64)), "key 'probe' has shape (16,) (1-D)"),
    ("probe_size", dict(probe=np.zeros((8, 8), np.complex64)),
     "data.h5: key 'probe' has shape (8, 8) but the patterns are 16×16; "
     "the probe (every mode) must match the pattern size"),
    ("probe_mode_size", dict(probe=np.zeros((2, 8, 8), np.complex64)),
     "key 'probe' has shape (2, 8, 8) but the patterns are 16×16"),
    ("probe_no_modes", dict(probe=np.zeros((0, N, N), np.complex64)), "key 'probe' has shape (0, 16, 16): no modes"),
    ("probe_rank_4", dict(probe=np.zeros((1, 2, N, N), np.complex64)), "expected (N, N) or (K, N, N)"),
    ("position_count", dict(y=np.full(M - 1, 20.0)),
     "key 'y' has 11 positions but there are 12 patterns; expected 12"),
    ("scan_index_count", dict(scan_index=np.arange(3)), "key 'scan_index' has 3 indices"),
    ("nan_diffraction", dict(diffraction=_nan_diffraction()),
     "key 'diffraction' contains 1 NaN values (first in pattern 3)"),
    ("inf_probe", dict(probe=_inf_probe()), "key 'probe' contains 1 Inf values"),
    ("nan_x", dict(x=np.full(M, np.nan)), "key 'x' contains 12 NaN values"),
    ("negative_counts", dict(diffraction=_negative_diffraction()),
     "key 'diffraction' has 3 negative values (min -2, first in pattern 7); expected counts ≥ 0"),
    ("empty", dict(diffraction=np.zeros((0, N, N), np.float32), x=np.zeros(0), y=np.zeros(0),
                   scan_index=None), "dataset is empty"),
    ("missing_probe", dict(probe=None), "missing key 'probe'"),
    ("complex_counts", dict(diffraction=np.zeros((M, N, N), np.complex64)),
     "key 'diffraction' has dtype complex64"),
]


@pytest.mark.parametrize("name, changes, fragment", INVALID, ids=[c[0] for c in INVALID])
def test_validation_errors_name_key_expected_and_found(name, changes, fragment):
    with pytest.raises(DataError) as info:
        validate_dataset(_with(**changes), where="data.h5")
    assert fragment in str(info.value)
    assert str(info.value).startswith("data.h5: ")
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 3


def test_valid_dataset_passes_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_dataset(make_dataset(), where="ok.h5", check_bounds="error")


def test_nan_found_in_a_later_chunk_of_a_lazy_file(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "VALIDATION_CHUNK", 4)
    ds = make_dataset()
    ds.diffraction[9, 5, 5] = np.inf
    ds.diffraction[10, 0, 0] = np.nan
    write_h5(tmp_path / "bad.h5", ds)
    with pytest.raises(DataError, match=r"1 NaN and 1 Inf values \(first in pattern 9\)") as info:
        load_dataset(tmp_path / "bad.h5")
    assert info.value.exit_code == 3
    assert load_dataset(tmp_path / "bad.h5", validate=False).n_patterns == M


def test_out_of_bounds_positions_warn_error_or_off(tmp_path):
    ds = make_dataset()
    ds.x[:3] = [0.0, 1.0, W - 2.0]  # windows of 16 px need x in [7.5, 31.5]
    with pytest.warns(UserWarning, match=r"3 of 12 positions put the 16×16 probe window outside"):
        validate_dataset(ds, where="d.npz")
    with pytest.raises(DataError, match=r"expected x in \[7.5, 31.5\]") as info:
        validate_dataset(ds, where="d.npz", check_bounds="error")
    assert info.value.exit_code == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_dataset(ds, where="d.npz", check_bounds="off")
        validate_dataset(replace(ds, object=None), where="d.npz")  # no object: nothing to check
    save_dataset(tmp_path / "d.npz", ds)
    with pytest.raises(DataError, match="outside"):
        load_dataset(tmp_path / "d.npz", check_bounds="error")
    with pytest.raises(ConfigError, match="check_bounds"):
        validate_dataset(ds, where="d.npz", check_bounds="maybe")


def test_window_exactly_at_the_object_edge_is_inside():
    ds = make_dataset()
    half = (N - 1) / 2
    ds.x[:2] = [half, W - 1 - half]
    ds.y[:2] = [half, H - 1 - half]
    validate_dataset(ds, where="edge", check_bounds="error")


# --------------------------------------------------------------------------- bad files


def test_missing_key_in_h5_and_npz(tmp_path):
    ds = make_dataset()
    with h5py.File(tmp_path / "nop.h5", "w") as f:
        for key in ("diffraction", "x", "y"):
            f[key] = getattr(ds, key)
    with pytest.raises(DataError, match=r"nop.h5: missing key 'probe'") as info:
        load_dataset(tmp_path / "nop.h5")
    assert info.value.exit_code == 3
    np.savez(tmp_path / "nop.npz", diffraction=ds.diffraction, x=ds.x, y=ds.y)
    with pytest.raises(DataError, match=r"nop.npz: missing key 'probe'"):
        load_dataset(tmp_path / "nop.npz")
    np.savez(tmp_path / "old.npz", diff3d=np.sqrt(ds.diffraction), xcoords=ds.x, ycoords=ds.y)
    with pytest.raises(DataError, match=r"missing key 'probeGuess'"):
        load_dataset(tmp_path / "old.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3))
    with pytest.raises(DataError, match="not a recognised NPZ dataset"):
        load_dataset(tmp_path / "other.npz")


def test_truncated_h5_is_a_data_error(tmp_path):
    path = tmp_path / "t.h5"
    write_h5(path, make_dataset())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t.h5: cannot open as HDF5") as info:
        load_dataset(path)
    assert info.value.exit_code == 3
    assert "\n" not in str(info.value)


def test_non_hdf5_file_with_h5_suffix(tmp_path):
    (tmp_path / "fake.h5").write_text("just some text\n")
    with pytest.raises(DataError, match="not HDF5"):
        load_dataset(tmp_path / "fake.h5")


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04broken"])
def test_corrupt_npz_is_a_data_error(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(DataError, match="bad.npz"):
        load_dataset(tmp_path / "bad.npz")


def test_npz_with_object_array_is_refused_not_unpickled(tmp_path):
    ds = make_dataset()
    probe = np.empty(1, dtype=object)
    probe[0] = {"evil": True}
    np.savez(tmp_path / "obj.npz", diffraction=ds.diffraction, x=ds.x, y=ds.y, probe=probe)
    with pytest.raises(DataError, match="pickle") as info:
        load_dataset(tmp_path / "obj.npz")
    assert "key 'probe'" in str(info.value)
    np.save(tmp_path / "pickled.npy", probe, allow_pickle=True)
    os.rename(tmp_path / "pickled.npy", tmp_path / "pickled.npz")
    with pytest.raises(DataError, match="single .npy array"):
        load_dataset(tmp_path / "pickled.npz")
    (tmp_path / "raw.npz").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset(tmp_path / "raw.npz")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match=r"nothere.h5: file not found"):
        load_dataset(tmp_path / "nothere.h5")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"suffix \.csv; supported: .*\.h5.*\.npz"):
        load_dataset(tmp_path / "data.csv")


def test_save_format_must_match_suffix(tmp_path):
    ds = make_dataset()
    with pytest.raises(ConfigError, match="ptychopinn-npz"):
        save_dataset(tmp_path / "x.h5", ds, format="ptychopinn-npz")
    with pytest.raises(ConfigError, match="unknown dataset format"):
        save_dataset(tmp_path / "x.npz", ds, format="tiff")
    with pytest.raises(ConfigError, match="suffix"):
        save_dataset(tmp_path / "x.dat", ds)
    assert_no_files(tmp_path)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "out.npz"
    with pytest.raises(KeyError):
        with atomic_output(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".npz"
            np.savez(tmp, a=np.zeros(3))
            assert tmp.exists()  # savez kept the name: the suffix was already .npz
            raise KeyError("boom")
    assert_no_files(target.parent)


def test_atomic_output_keeps_an_existing_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_write_json_atomic_handles_numpy(tmp_path):
    obj = {"b": np.float32(1.5), "a": np.int64(3), "arr": np.arange(2), "p": tmp_path}
    path = write_json_atomic(tmp_path / "deep" / "m.json", obj)
    text = path.read_text()
    assert json.loads(text) == {"a": 3, "arr": [0, 1], "b": 1.5, "p": str(tmp_path)}
    assert text.index('"a"') < text.index('"b"') and text.startswith("{\n  ")


def test_streaming_writer_writes_blocks_in_any_order(tmp_path):
    ds = make_dataset()
    kwargs = dict(n_patterns=M, N=N, x=ds.x, y=ds.y, probe=ds.probe, object=ds.object,
                  scan_index=ds.scan_index, metadata=ds.metadata)
    with H5DatasetWriter(tmp_path / "s.h5", **kwargs) as writer:
        writer.write(8, ds.diffraction[8:])
        writer.write(0, ds.diffraction[:8])
        assert not (tmp_path / "s.h5").exists()  # only the temp file exists until exit
    with read_h5(tmp_path / "s.h5") as back:
        assert_same(ds, back)
    assert os.listdir(tmp_path) == ["s.h5"]


def test_streaming_writer_incomplete_or_failing_leaves_no_file(tmp_path):
    ds = make_dataset()
    kwargs = dict(n_patterns=M, N=N, x=ds.x, y=ds.y, probe=ds.probe, metadata={})
    with pytest.raises(RuntimeError, match="4 of 12 patterns were never written"):
        with H5DatasetWriter(tmp_path / "s.h5", **kwargs) as writer:
            writer.write(0, ds.diffraction[:8])
    assert_no_files(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with H5DatasetWriter(tmp_path / "s.h5", **kwargs) as writer:
            writer.write(0, ds.diffraction[:4])
            1 / 0
    assert_no_files(tmp_path)
    with pytest.raises(ValueError, match="the dataset has 12"):
        with H5DatasetWriter(tmp_path / "s.h5", **kwargs) as writer:
            writer.write(10, ds.diffraction[:4])  # runs past the end
    assert_no_files(tmp_path)


# --------------------------------------------------------------------------- lazy reads


def test_lazy_read_patterns_with_unsorted_and_duplicated_indices(tmp_path):
    ds = make_dataset()
    write_h5(tmp_path / "l.h5", ds)
    index = np.array([7, 2, 2, 11, 0, 7])
    with read_h5(tmp_path / "l.h5") as lazy:
        got = lazy.read_patterns(index)
        assert got.dtype == np.float32 and got.shape == (6, N, N)
        np.testing.assert_array_equal(got, ds.diffraction[index])
        np.testing.assert_array_equal(lazy.read_patterns(slice(3, 5)), ds.diffraction[3:5])
        np.testing.assert_array_equal(lazy.subset(index).x, ds.x[index])
    assert not lazy.diffraction.id.valid  # closed with the dataset


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("bad", [M, M + 3, -1])
def test_out_of_range_pattern_indices_raise_instead_of_wrapping(tmp_path, lazy, bad):
    ds = make_dataset()
    write_h5(tmp_path / "l.h5", ds)
    with read_h5(tmp_path / "l.h5") if lazy else ds as source:
        with pytest.raises(IndexError, match=f"pattern index {bad} is out of range for {M} patterns"):
            source.read_patterns(np.array([0, bad]))
        np.testing.assert_array_equal(source.read_patterns(np.array([M - 1, 0])), ds.diffraction[[M - 1, 0]])


def test_a_closed_file_is_not_read_from_its_cache(tmp_path):
    """h5py keeps a closed dataset's shape: reading it after close must fail, not quietly work."""
    write_h5(tmp_path / "l.h5", make_dataset())
    with read_h5(tmp_path / "l.h5") as lazy:
        assert lazy.n_patterns == M
    for read in (lambda: lazy.n_patterns, lambda: lazy.N, lambda: lazy.read_patterns(slice(0, 1))):
        with pytest.raises(ValueError, match="the file is closed"):
            read()
    in_memory = make_dataset()
    in_memory.close()  # nothing to close: stays readable
    assert in_memory.n_patterns == M


# --------------------------------------------------------------------------- probes


def test_load_probe_from_every_source(tmp_path):
    ds = make_dataset()
    save_dataset(tmp_path / "c.h5", ds)
    save_dataset(tmp_path / "c.npz", ds)
    save_dataset(tmp_path / "l.npz", ds, format="ptychopinn-npz")
    with h5py.File(tmp_path / "product.h5", "w") as f:
        f["probe"] = ds.probe.astype(np.complex128)[None, None]  # Ptychodus (1, 1, h, w)
        f["object"] = ds.object[None]
    np.savez(tmp_path / "flat.npz", probe=ds.probe[None], object=ds.object[None])
    for name in ("c.h5", "c.npz", "l.npz", "product.h5", "flat.npz"):
        probe = load_probe(tmp_path / name)
        assert probe.dtype == np.complex64 and probe.shape == (N, N), name
        np.testing.assert_array_equal(probe, ds.probe)


def test_load_probe_keeps_every_mode_of_the_first_coherent_entry(tmp_path):
    modes = np.stack([np.full((N, N), k + 1j, np.complex64) for k in range(3)])
    with h5py.File(tmp_path / "modes.h5", "w") as f:
        f["probe"] = modes[None]  # Ptychodus (1, K, h, w): no warning
    np.testing.assert_array_equal(load_probe(tmp_path / "modes.h5"), modes)
    np.savez(tmp_path / "opr.npz", probe=np.stack([modes, 2 * modes]))  # pty-chi (OPR, K, h, w)
    with pytest.warns(UserWarning, match=r"kept the first entry of the axes \(2,\) before the modes"):
        np.testing.assert_array_equal(load_probe(tmp_path / "opr.npz"), modes)
    np.savez(tmp_path / "none.npz", probe=np.zeros((0, N, N), np.complex64))
    with pytest.raises(DataError, match="no modes"):
        load_probe(tmp_path / "none.npz")


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_a_mixed_state_probe_round_trips_through_both_formats(tmp_path, suffix):
    ds = make_dataset()
    modes = np.stack([ds.probe, 0.5j * ds.probe[::-1]]).astype(np.complex64)
    path = save_dataset(tmp_path / f"modes{suffix}", replace(ds, probe=modes))
    with load_dataset(path) as back:
        assert back.probe.shape == (2, N, N) and back.probe.dtype == np.complex64
        np.testing.assert_array_equal(back.probe, modes)
    np.testing.assert_array_equal(load_probe(path), modes)


def test_the_ptychopinn_layout_refuses_a_mixed_state_probe(tmp_path):
    ds = make_dataset()
    with pytest.raises(ConfigError, match="holds one coherent probe but this dataset's probe has 2 incoherent modes"):
        save_dataset(tmp_path / "l.npz", replace(ds, probe=np.stack([ds.probe, ds.probe])), format="ptychopinn-npz")
    assert not (tmp_path / "l.npz").exists()


def test_load_probe_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_probe(tmp_path / "none.h5")
    with h5py.File(tmp_path / "noprobe.h5", "w") as f:
        f["object"] = np.ones((4, 4))
    with pytest.raises(DataError, match="no dataset 'probe'"):
        load_probe(tmp_path / "noprobe.h5")
    np.savez(tmp_path / "rect.npz", probe=np.ones((4, 6), np.complex64))
    with pytest.raises(DataError, match=r"shape \(4, 6\); expected a square"):
        load_probe(tmp_path / "rect.npz")
    np.savez(tmp_path / "nan.npz", probeGuess=np.full((4, 4), np.nan, np.complex64))
    with pytest.raises(DataError, match="NaN"):
        load_probe(tmp_path / "nan.npz")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match="not HDF5"):
        load_probe(tmp_path / "junk.h5")


def test_reduce_leading_squeezes_singletons_takes_the_first_entry_and_multiplies_layers():
    from ptycho.data.coercion import reduce_leading

    a = np.arange(8, dtype=np.complex64).reshape(1, 1, 2, 4) + 1
    np.testing.assert_array_equal(reduce_leading(a, "object", "f.h5"), a[0, 0])  # no warning for singletons
    layers = np.stack([np.full((2, 2), 2 + 0j), np.full((2, 2), 1j)]).astype(np.complex64)
    with pytest.warns(UserWarning, match=r"f.h5: 'object' has shape \(2, 2, 2\): 2 layers; using their product"):
        out = reduce_leading(layers, "object", "f.h5", combine=True)
    np.testing.assert_array_equal(out, np.full((2, 2), 2j, np.complex64))
    assert out.dtype == np.complex64
    with pytest.warns(UserWarning, match="2 entries; using the first"):
        np.testing.assert_array_equal(reduce_leading(layers, "psi", "f.h5"), layers[0])
