"""``ptycho import`` of CXI files whose detector axes are flipped or swapped (``basis_vectors``),
and of pty-chi's own NPZ layout: exact round trips back to the original arrays."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptycho.io.datasets import load_dataset
from tests.test_import import _simulate, expect_refusal, known_arrays, write_cxi

D = 75e-6  # a detector pixel step (m); only the directions matter to the importer

# stored frame from the original P[row=+y, column=+x], and the basis vectors (slow; fast) saying so
ORIENTATIONS = {
    "rows reversed": (lambda p: p[..., ::-1, :], [[0, -D, 0], [D, 0, 0]]),
    "both reversed": (lambda p: p[..., ::-1, ::-1], [[0, -D, 0], [-D, 0, 0]]),
    "transposed": (lambda p: np.swapaxes(p, -1, -2), [[D, 0, 0], [0, D, 0]]),
    # stored S[s, f] = P[n-1-f, s]: the slow axis runs along +x, the fast one along -y
    "transposed, fast reversed": (lambda p: np.swapaxes(p, -1, -2)[..., ::-1], [[D, 0, 0], [0, -D, 0]]),
}


@pytest.fixture(scope="module")
def sim32(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim"), 32)


def _add(path, key, value):
    with h5py.File(path, "a") as f:
        f[key] = value


@pytest.mark.parametrize("case", sorted(ORIENTATIONS))
def test_flipped_or_transposed_detector_is_put_back_exactly(invoke, sim32, tmp_path, case):
    stored_from, basis = ORIENTATIONS[case]
    patterns, x, y, probe = known_arrays(sim32)
    patterns[:, 2, 9] = 65535.0  # a saturated pixel, away from any symmetry line: locates the flips
    bits = np.zeros((32, 32), np.uint32)
    bits[2, 9] = 0x2
    write_cxi(tmp_path / "scan.cxi", np.ascontiguousarray(stored_from(patterns)), x - 15.5, y - 15.5, probe,
              stored_from(bits))
    _add(tmp_path / "scan.cxi", "entry_1/instrument_1/detector_1/basis_vectors", np.array(basis))
    out = tmp_path / "scan.h5"
    result = invoke("import", tmp_path / "scan.cxi", "--out", out)
    assert result.exit_code == 0, result.output
    with load_dataset(out) as ds:
        np.testing.assert_array_equal(ds.read_patterns(), patterns)  # exact: a relabelling of pixels
        expected = np.ones((32, 32), bool)
        expected[2, 9] = False
        np.testing.assert_array_equal(ds.mask, expected)
        np.testing.assert_array_equal(ds.x, x)  # lab-frame positions are untouched
        np.testing.assert_array_equal(ds.y, y)
        np.testing.assert_array_equal(ds.probe, probe)
        record = ds.metadata["detector_orientation"]
    assert record["basis_vectors_m"] == basis
    assert record["transposed"] == case.startswith("transposed")
    assert any(step.startswith("CXI detector basis vectors") for step in ds.metadata["conversions"])


def test_standard_basis_and_sample_orientation_change_nothing_but_are_recorded(invoke, sim32, tmp_path):
    patterns, x, y, probe = known_arrays(sim32)
    write_cxi(tmp_path / "scan.cxi", patterns, x - 15.5, y - 15.5, probe)
    _add(tmp_path / "scan.cxi", "entry_1/instrument_1/detector_1/basis_vectors",
         np.tile(np.array([[0, D, 0], [D, 0, 0]]), (len(x), 1, 1)))  # one per frame, all alike
    _add(tmp_path / "scan.cxi", "entry_1/sample_1/geometry_1/orientation", np.array([-1.0, 0, 0, 0, 1, 0]))
    result = invoke("import", tmp_path / "scan.cxi", "--out", tmp_path / "scan.h5")
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "scan.h5") as ds:
        np.testing.assert_array_equal(ds.read_patterns(), patterns)
        np.testing.assert_array_equal(ds.x, x)
        assert ds.metadata["detector_orientation"]["slow"] == "+y"
        assert ds.metadata["sample_orientation"] == {"direction_cosines": [[-1.0, 0, 0], [0, 1.0, 0]],
                                                     "sample_x": "-x", "sample_y": "+y", "lab_frame": False}


@pytest.mark.parametrize("basis, words", [
    ([[0, D, 0], [D * np.cos(0.3), D * np.sin(0.3), 0]], ["not a flip or transpose", "basis_vectors"]),  # skewed
    ([[D * np.cos(0.5), D * np.sin(0.5), 0], [-D * np.sin(0.5), D * np.cos(0.5), 0]], ["rotated by another angle"]),
    ([[0, D, 0], [D, 0, D]], ["tilted"]),  # out of the detector plane
    ([[0, D, 0], [0, D, 0]], ["not a flip or transpose"]),  # both along y
])
def test_other_detector_geometries_are_refused(invoke, sim32, tmp_path, basis, words):
    patterns, x, y, probe = known_arrays(sim32)
    write_cxi(tmp_path / "skew.cxi", patterns, x - 15.5, y - 15.5, probe)
    _add(tmp_path / "skew.cxi", "entry_1/instrument_1/detector_1/basis_vectors", np.array(basis))
    out = tmp_path / "out.h5"
    expect_refusal(invoke("import", tmp_path / "skew.cxi", "--out", out), out, *words)


def ptychi_npz(path, sim, with_object=True, **extra):
    """One of our datasets in pty-chi's example layout (src/ptycho/io/importers/ptychi.py)."""
    from ptycho.io.importers.ptychi import ptychi_origin

    with load_dataset(sim) as ds:
        oy, ox = ptychi_origin(ds.object.shape) if with_object else (0.0, 0.0)
        arrays = {"data": ds.read_patterns(), "positions_px": np.stack([ds.y - oy, ds.x - ox], axis=1),
                  "probe": np.asarray(ds.probe)[None, None], "pixel_size_m": np.float64(2.0**-24), **extra}
        if with_object:
            arrays["object"] = ds.object[None]
        np.savez(path, **arrays)


def test_ptychi_layout_round_trip_is_the_original_dataset(invoke, sim32, tmp_path):
    import json

    ptychi_npz(tmp_path / "ptychi.npz", sim32)
    out = tmp_path / "back.npz"
    result = invoke("import", tmp_path / "ptychi.npz", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "ptychi-npz"
    with load_dataset(sim32) as a, load_dataset(out) as b:
        np.testing.assert_array_equal(b.read_patterns(), a.read_patterns())
        for key in ("x", "y", "probe", "object"):
            np.testing.assert_array_equal(getattr(b, key), getattr(a, key), err_msg=key)
        assert b.metadata["zero_frequency"] == {"source": "centre", "how": "ptychi-npz convention"}
        assert b.metadata["pixel_size_m"] == 2.0**-24
        H, W = a.object.shape
        assert b.metadata["ptychi_position_origin_px"] == {"x": W // 2 + 0.5, "y": H // 2 + 0.5}
        assert any("(y, x)" in step for step in b.metadata["conversions"])


def test_ptychi_without_object_starts_at_pixel_zero(invoke, sim32, tmp_path):
    ptychi_npz(tmp_path / "bare.npz", sim32, with_object=False, wavelength_m=np.float64(1.5e-10),
               free_space_propagation_distance_m=np.float64(np.inf))  # far field: no distance known
    result = invoke("import", tmp_path / "bare.npz", "--out", tmp_path / "bare.h5")
    assert result.exit_code == 0, result.output
    with load_dataset(sim32) as a, load_dataset(tmp_path / "bare.h5") as b:
        assert b.metadata["photon_energy_eV"] == pytest.approx(12398.419843320026 / 1.5, rel=1e-12)
        assert "detector_distance_m" not in b.metadata and b.metadata["pixel_size_m"] == 2.0**-24
        assert b.x.min() == b.y.min() == 15.5  # the first window's centre: (N-1)/2
        np.testing.assert_allclose(b.x - b.x.min(), a.x - a.x.min(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.y - b.y.min(), a.y - a.y.min(), rtol=0, atol=1e-12)
        assert b.object is None


def test_ptychi_positions_of_the_wrong_shape_are_refused(invoke, sim32, tmp_path):
    with load_dataset(sim32) as ds:
        np.savez(tmp_path / "bad.npz", data=ds.read_patterns(), positions_px=np.zeros((ds.n_patterns, 3)))
    out = tmp_path / "out.h5"
    expect_refusal(invoke("import", tmp_path / "bad.npz", "--out", out), out, "inconsistent shapes", "positions_px")
