"""``--object file:PATH[:KEY]``: a complex transmission read from a file, its specimen region cut
out and resampled to fill the object."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.errors import DataError
from ptycho.physics.object import file_object, resample_square, specimen_box


def _specimen(side: int = 40, pad: int = 25, offset: tuple[int, int] = (5, -3)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth complex square on a flat unit background, and the square alone."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    square = (0.7 + 0.2 * xx) * np.exp(1j * (0.5 * yy - 0.2))
    full = np.ones((side + 2 * pad, side + 2 * pad + 10), np.complex128)
    r0, c0 = pad + offset[0], pad + 5 + offset[1]
    full[r0:r0 + side, c0:c0 + side] = square
    return full, square


def test_specimen_region_is_cut_exactly_and_used_as_is_at_its_own_size(tmp_path):
    full, square = _specimen()
    np.savez(tmp_path / "spec.npz", object=full.astype(np.complex64), other=np.zeros(3))
    assert specimen_box(full) == (30, 27, 40)
    obj = file_object(40, np.random.default_rng(0), None, f"{tmp_path / 'spec.npz'}")
    assert obj.dtype == np.complex64 and obj.shape == (40, 40)
    np.testing.assert_allclose(obj, square, atol=1e-6)


def test_resampling_maps_pixel_centres_and_keeps_a_ramp_exact():
    side, size = 40, 100
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    ramp = (0.5 + 0.01 * xx) + 1j * (0.02 * yy)
    out = resample_square(ramp, size)
    coords = (np.arange(size) + 0.5) * side / size - 0.5  # output pixel centre i in input pixels
    inner = slice(25, -25)  # 10 input pixels from the held edges, where cubic splines reproduce a ramp
    assert out.shape == (size, size)
    np.testing.assert_allclose(out.real[inner, inner], (0.5 + 0.01 * coords[None, :]).repeat(size, 0)[inner, inner], atol=1e-5)
    np.testing.assert_allclose(out.imag[inner, inner], (0.02 * coords[:, None]).repeat(size, 1)[inner, inner], atol=1e-5)


def test_npy_and_named_key(tmp_path):
    full, square = _specimen()
    np.save(tmp_path / "spec.npy", full)
    np.savez(tmp_path / "two.npz", probe=np.ones((4, 4)), transmission=full[None])
    np.testing.assert_allclose(file_object(40, None, None, str(tmp_path / "spec.npy")), square, atol=1e-6)
    np.testing.assert_allclose(file_object(40, None, None, f"{tmp_path / 'two.npz'}:transmission"), square, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "arg", "needle"),
    [
        ("missing", "{dir}/nope.npz", "object file not found"),
        ("key", "{dir}/spec.npz:nothing", "no array 'nothing' (has: object)"),
        ("rank", "{dir}/cube.npy", "expected a 2-D transmission"),
        ("nan", "{dir}/nan.npy", "NaN or Inf"),
        ("empty", "", "needs a path"),
    ],
)
def test_bad_files_are_data_errors(tmp_path, name, arg, needle):
    full, _ = _specimen()
    np.savez(tmp_path / "spec.npz", object=full)
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    bad = full.copy()
    bad[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        file_object(40, None, None, arg.format(dir=tmp_path) or None)


def test_simulate_with_a_file_object(invoke, tmp_path):
    from ptycho.io.datasets import load_dataset

    full, _ = _specimen()
    np.savez(tmp_path / "spec.npz", object=full)
    out = tmp_path / "data.npz"
    args = ["--N", "32", "--size", "64", "--n-images", "8", "--no-noise", "--no-preview", "--quiet"]
    result = invoke("simulate", *args, "--object", f"file:{tmp_path / 'spec.npz'}:object", "--out", out)
    assert result.exit_code == 0, result.output
    with load_dataset(out) as ds:
        np.testing.assert_allclose(ds.object, file_object(64, None, None, str(tmp_path / "spec.npz")), atol=1e-6)
    missing = invoke("simulate", *args, "--object", f"file:{tmp_path / 'none.npz'}", "--out", tmp_path / "x.npz")
    assert missing.exit_code == 3 and "object file not found" in missing.stderr
    assert not (tmp_path / "x.npz").exists()
