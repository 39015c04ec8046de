"""``stitch`` and the object/patches file formats (docs/formats.md#patches-files)."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from scipy import ndimage

from ptycho.config.stitch import StitchConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import ConfigError, DataError
from ptycho.io.datasets import save_dataset
from ptycho.io.objects import ObjectImage, ScanPositions, read_object, write_object
from ptycho.io.patches import PatchesWriter, read_patches
from ptycho.physics.operators.numpy_ops import extract_patches
from ptycho.workflows.stitch import stitch
from ptycho.workflows.stitch_canvas import crop_geometry

N = 16
EXACT_RTOL = 1e-5
"""Whole-pixel windows: extraction and placement are copies; only float32 sums round."""
SUBPIXEL_RMS_FRACTION = 0.25
"""RMS error of a sub-pixel stitch relative to its worst-case bound (observed ≈ 0.05)."""
LSQ_MEDIAN_ERROR = 1e-2
"""Median error of the least-squares stitch of exact sub-pixel windows inside the scan (observed 2e-4 and 7e-4)."""
LSQ_RMS_FRACTION = 0.5
"""Its RMS error relative to the overlap average's (observed 0.15 and 0.07)."""


def random_object(shape, seed=0, smooth=0.0):
    rng = np.random.default_rng(seed)
    re, im = rng.standard_normal(shape), rng.standard_normal(shape)
    if smooth:
        re, im = ndimage.gaussian_filter(re, smooth), ndimage.gaussian_filter(im, smooth)
    return ((1.0 + 0.3 * re) * np.exp(1j * im)).astype(np.complex64)


def grid_positions(size, step):
    """Window centres with whole-pixel corners: ``x − (N−1)/2`` is an integer."""
    c = np.arange((N - 1) / 2, size - (N - 1) / 2, step)
    X, Y = np.meshgrid(c, c)
    return X.ravel(), Y.ravel()


def write_patches(path, obj, x, y, C, provenance=None):
    """Group positions ``C`` at a time, each position a member of ``C`` groups (cyclic), cut exact
    patches from ``obj`` and write them in two blocks."""
    M = len(x)
    members = (np.arange(M)[:, None] + np.arange(C)[None, :]) % M  # (G, C), G = M
    gx, gy = x[members], y[members]
    patches = extract_patches(obj[None], gx.reshape(1, -1), gy.reshape(1, -1), N)[0]
    patches = patches.reshape(M, C, N, N)
    half = M // 2
    with PatchesWriter(path, M, C, N, {"dataset": "synthetic", **(provenance or {})}, object_shape=obj.shape) as writer:
        writer.write(half, patches[half:], gx[half:], gy[half:], members[half:])
        writer.write(0, patches[:half], gx[:half], gy[:half], members[:half])
    return path


def expected_support(x, y, M, origin, shape):
    """Union of the crops' pixel squares (whole-pixel corners only)."""
    s, delta = crop_geometry(N, M)
    support = np.zeros(shape, bool)
    for cx, cy in zip(x + delta, y + delta):
        c0, r0 = int(round(cx - (M - 1) / 2 - origin[0])), int(round(cy - (M - 1) / 2 - origin[1]))
        support[r0:r0 + M, c0:c0 + M] = True
    return support


def truth_on_canvas(obj, image):
    oy, ox = int(image.origin_y), int(image.origin_x)
    return obj[oy:oy + image.shape[0], ox:ox + image.shape[1]]


@pytest.mark.parametrize("C", [1, 4])
@pytest.mark.parametrize(("M", "step"), [(8, 4.0), (5, 3.0), (4, 6.0), (16, 5.0)])
def test_stitching_exact_patches_reproduces_the_object(tmp_path, C, M, step):
    """Grid scan, whole-pixel corners: exact inside every crop, exactly 0 and unsupported outside.

    ``step > M`` (M=4, step 6) leaves gaps between crops; odd ``N − M`` (M=5) checks the
    half-pixel crop offset."""
    obj = random_object((72, 72), seed=C + M)
    x, y = grid_positions(72, step)
    out = tmp_path / "object.npz"
    result = stitch(StitchConfig(crop=M, chunk_groups=7), write_patches(tmp_path / "p.h5", obj, x, y, C), out)
    image = read_object(out)
    assert result.crop == M and image.shape == result.shape
    support = expected_support(x, y, M, (image.origin_x, image.origin_y), image.shape)
    np.testing.assert_array_equal(image.support, support)
    truth = truth_on_canvas(obj, image)
    np.testing.assert_allclose(image.object[support], truth[support], rtol=EXACT_RTOL)
    assert np.all(image.object[~support] == 0)
    assert (step > M) == (not support.all())
    assert image.metadata["crop"] == M and image.metadata["n_patches"] == len(x) * C


def test_random_whole_pixel_scan_is_exact(tmp_path):
    rng = np.random.default_rng(3)
    obj = random_object((64, 64), seed=3)
    x = rng.integers(0, 64 - N, 40) + (N - 1) / 2
    y = rng.integers(0, 64 - N, 40) + (N - 1) / 2
    out = tmp_path / "o.h5"
    stitch(StitchConfig(crop=8), write_patches(tmp_path / "p.h5", obj, x, y, 4), out)
    image = read_object(out)
    np.testing.assert_array_equal(image.support, expected_support(x, y, 8, (image.origin_x, image.origin_y), image.shape))
    np.testing.assert_allclose(image.object[image.support], truth_on_canvas(obj, image)[image.support], rtol=EXACT_RTOL)


@pytest.mark.parametrize("C", [1, 4])
def test_random_subpixel_scan_within_the_interpolation_bound(tmp_path, C):
    """Random scan with sub-pixel positions.

    Bilinear placement of a bilinearly extracted patch is *not* the identity off whole pixels:
    crop pixel ``j`` of a window whose corner sits at ``u`` holds ``L(u + j)``, the bilinear
    interpolation of the object there, and is spread to the 2×2 pixels around ``u + j`` with tent
    weights. Each stitched pixel ``p`` is therefore a convex combination of values ``L(u)`` with
    ``|u − p| < 1`` per axis, so ``|stitched − o(p)| ≤ Gx + Gy``, the largest pixel-to-pixel
    differences of the object along x and y. In a crop's interior the first-order terms cancel
    (``(1−f)·f − f·(1−f) = 0``), leaving only second-order errors; the first-order worst case
    occurs at crop edges with tiny weights. Hence: (1) a constant object is reproduced exactly
    (every convex combination of one value is that value: checks the same-support average);
    (2) a smooth object stays within ``Gx + Gy`` everywhere and within a quarter of it in RMS.
    """
    rng = np.random.default_rng(10 + C)
    x, y = rng.uniform(N / 2, 64 - N / 2, 60), rng.uniform(N / 2, 64 - N / 2, 60)
    constant = np.full((64, 64), 0.7 * np.exp(0.4j), np.complex64)
    out = tmp_path / "c.npz"
    stitch(StitchConfig(chunk_groups=16), write_patches(tmp_path / "c.h5", constant, x, y, C), out)
    image = read_object(out)
    np.testing.assert_allclose(image.object[image.support], constant[0, 0], rtol=EXACT_RTOL)
    assert np.all(image.object[~image.support] == 0)

    smooth = random_object((64, 64), seed=C, smooth=4.0)
    stitch(StitchConfig(), write_patches(tmp_path / "s.h5", smooth, x, y, C), out)
    image = read_object(out)
    err = np.abs(image.object - truth_on_canvas(smooth, image))[image.support]
    bound = np.abs(np.diff(smooth, axis=1)).max() + np.abs(np.diff(smooth, axis=0)).max()
    assert err.max() <= bound
    assert np.sqrt(np.mean(err**2)) <= SUBPIXEL_RMS_FRACTION * bound


def test_stitch_is_deterministic(tmp_path):
    rng = np.random.default_rng(5)
    obj = random_object((48, 48))
    x, y = rng.uniform(8, 40, 30), rng.uniform(8, 40, 30)
    patches = write_patches(tmp_path / "p.h5", obj, x, y, 4)
    a = stitch(StitchConfig(chunk_groups=3), patches, tmp_path / "a.npz", figures=False)
    b = stitch(StitchConfig(chunk_groups=3), patches, tmp_path / "b.npz", figures=False)
    np.testing.assert_array_equal(read_object(a.path).object, read_object(b.path).object)


def test_stitch_runs_without_tensorflow(tmp_path):
    """stitch uses the NumPy operators on purpose: the command never pays TensorFlow's import."""
    rng = np.random.default_rng(6)
    patches = write_patches(tmp_path / "p.h5", random_object((40, 40)), rng.uniform(8, 32, 12), rng.uniform(8, 32, 12), 1)
    code = ("import sys\nfrom ptycho.config.stitch import StitchConfig\nfrom ptycho.workflows.stitch import stitch\n"
            f"stitch(StitchConfig(), {str(patches)!r}, {str(tmp_path / 'o.npz')!r}, figures=False)\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_object(tmp_path / "o.npz").support.any()


def test_object_file_round_trip(tmp_path):
    obj = random_object((20, 30))
    support = np.zeros((20, 30), bool)
    support[2:15, 3:25] = True
    image = ObjectImage(obj, support, 4.0, -3.0, {"crop": 8})
    for name in ("o.npz", "o.h5"):
        back = read_object(write_object(tmp_path / name, image))
        np.testing.assert_array_equal(back.object, obj)
        np.testing.assert_array_equal(back.support, support)
        assert (back.origin_x, back.origin_y, back.metadata) == (4.0, -3.0, {"crop": 8})
    with pytest.raises(ConfigError, match="suffix"):
        write_object(tmp_path / "o.tif", image)


@pytest.mark.parametrize("name", ["o.npz", "o.h5"])
def test_object_files_carry_refined_positions_and_refuse_incomplete_ones(tmp_path, name):
    obj = random_object((20, 30))
    positions = ScanPositions(np.array([0, 3, 5]), np.array([4.25, 9.5, 12.0]), np.array([7.0, 7.75, 8.5]))
    back = read_object(write_object(tmp_path / name, ObjectImage(obj, np.ones(obj.shape, bool), positions=positions)))
    np.testing.assert_array_equal(back.positions.index, positions.index)
    np.testing.assert_array_equal(back.positions.x, positions.x)
    np.testing.assert_array_equal(back.positions.y, positions.y)
    x, y = back.positions.apply(np.zeros(6), np.ones(6))
    np.testing.assert_array_equal(x, [4.25, 0, 0, 9.5, 0, 12.0])
    np.testing.assert_array_equal(y, [7.0, 1, 1, 7.75, 1, 8.5])
    assert read_object(write_object(tmp_path / f"plain{name}", ObjectImage(obj, np.ones(obj.shape, bool)))).positions is None
    np.savez(tmp_path / "half.npz", object=obj, positions_x=positions.x)
    with pytest.raises(DataError, match="refined positions are incomplete"):
        read_object(tmp_path / "half.npz")


@pytest.mark.parametrize("refined", [False, True])
def test_stitch_records_the_refined_positions_the_patches_were_placed_at(tmp_path, refined):
    obj = random_object((66, 66), smooth=1.0)
    x, y = grid_positions(64, 6)
    x, y = x + 1.3, y + 0.8  # sub-pixel, inside the object
    path = write_patches(tmp_path / "p.h5", obj, x, y, 4)
    if refined:  # infer marks patches made at refined positions in their provenance
        with h5py.File(path, "r+") as f:
            f.attrs["provenance"] = json.dumps({"dataset": "synthetic", "positions": "refined (training)"})
    image = read_object(stitch(StitchConfig(), path, tmp_path / "o.npz", figures=False).path)
    if not refined:
        assert image.positions is None
        return
    np.testing.assert_array_equal(image.positions.index, np.arange(len(x)))
    np.testing.assert_array_equal(image.positions.x, x)
    np.testing.assert_array_equal(image.positions.y, y)


def test_read_object_accepts_plain_legacy_and_dataset_files(tmp_path):
    obj = random_object((24, 24))
    np.savez(tmp_path / "legacy.npz", objectGuess=obj)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["object"] = obj
    ds = Dataset(np.zeros((2, N, N), np.float32), np.array([8.0, 9.0]), np.array([8.0, 9.0]),
                 np.ones((N, N), np.complex64), obj)
    save_dataset(tmp_path / "data.h5", ds)
    for name in ("legacy.npz", "plain.h5", "data.h5"):
        image = read_object(tmp_path / name)
        np.testing.assert_array_equal(image.object, obj)
        assert image.support.all() and (image.origin_x, image.origin_y) == (0.0, 0.0)
    save_dataset(tmp_path / "no_truth.npz", Dataset(ds.diffraction, ds.x, ds.y, ds.probe))
    with pytest.raises(DataError, match="no ground-truth object"):
        read_object(tmp_path / "no_truth.npz")
    np.savez(tmp_path / "nan.npz", object=np.full((4, 4), np.nan, np.complex64))
    with pytest.raises(DataError, match="NaN"):
        read_object(tmp_path / "nan.npz")


def test_patches_writer_is_atomic(tmp_path):
    path = tmp_path / "p.h5"
    with pytest.raises(RuntimeError, match="never written"):
        with PatchesWriter(path, 4, 1, N, {}) as writer:
            writer.write(0, np.zeros((2, 1, N, N)), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(KeyboardInterrupt):
        with PatchesWriter(path, 1, 1, N, {}):
            raise KeyboardInterrupt
    with pytest.raises(ValueError, match="does not fit"):
        with PatchesWriter(path, 1, 4, N, {}) as writer:
            writer.write(0, np.zeros((1, 1, N, N)), np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)))
    assert list(tmp_path.iterdir()) == []


def test_read_patches_validates(tmp_path):
    obj = random_object((40, 40))
    x, y = grid_positions(40, 6.0)
    good = write_patches(tmp_path / "p.h5", obj, x, y, 4)
    pf = read_patches(good)
    assert (pf.N, pf.gridsize, pf.C, pf.n_groups, pf.object_shape) == (N, 2, 4, len(x), (40, 40))
    assert pf.provenance == {"dataset": "synthetic"}
    assert sum(len(block) for _, block, _, _ in pf.iter_chunks(5)) == len(x)
    with h5py.File(good, "a") as f:
        del f["y"]
        f["y"] = np.zeros((3, 4))
    with pytest.raises(DataError, match="key 'y' has shape"):
        read_patches(good)


def stitch_cli(invoke, *args):
    return invoke("stitch", *args)


def test_cli_stitch_writes_object_pngs_and_config(invoke, tmp_path):
    obj = random_object((48, 48))
    x, y = grid_positions(48, 4.0)
    patches = write_patches(tmp_path / "p.h5", obj, x, y, 1)
    out = tmp_path / "out" / "obj.npz"
    result = stitch_cli(invoke, patches, "--out", out, "--crop", 6, "--method", "average", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["crop"] == 6 and summary["object"] == str(out)
    for name in ("obj.npz", "obj.config.yaml", "obj.amplitude.png", "obj.phase.png"):
        assert (out.parent / name).is_file(), name
    stored = yaml.safe_load((out.parent / "obj.config.yaml").read_text())["stitch"]
    assert stored["crop"] == 6 and stored["method"] == "average"
    image = read_object(out)
    assert image.metadata["crop"] == 6 and image.shape == (int(x.max() - x.min()) + 6,) * 2
    assert image.metadata["method"] == "average"
    result = stitch_cli(invoke, patches, "--out", out, "--method", "median")
    assert result.exit_code == 2 and "stitch.method" in result.output
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_cli_stitch_rejects_a_crop_larger_than_N(invoke, tmp_path):
    patches = write_patches(tmp_path / "p.h5", random_object((32, 32)), *grid_positions(32, 8.0), 1)
    result = stitch_cli(invoke, patches, "--out", tmp_path / "o.npz", "--crop", N + 1)
    assert result.exit_code == 2 and "stitch.crop" in result.output
    assert f"use 1 ≤ --crop ≤ {N}" in result.output  # the core names the field, the shell prints the flag
    with pytest.raises(ConfigError, match=f"use 1 ≤ `stitch.crop` ≤ {N}"):
        StitchConfig(crop=N + 1).crop_size(N)
    result = stitch_cli(invoke, patches, "--out", tmp_path / "o.tif")
    assert result.exit_code == 2 and "suffix" in result.output


def _nan_patches(path):
    with PatchesWriter(path, 2, 1, N, {}) as writer:
        block = np.ones((2, 1, N, N), np.complex64)
        block[1, 0, 3, 3] = np.nan
        writer.write(0, block, np.full((2, 1), 10.0), np.full((2, 1), 10.0), np.zeros((2, 1)))
    return path


@pytest.mark.parametrize("case", ["missing", "dataset", "text", "nan"])
def test_cli_stitch_bad_inputs_exit_3(invoke, tmp_path, case):
    path = tmp_path / "in.h5"
    if case == "dataset":
        save_dataset(path, Dataset(np.zeros((1, N, N), np.float32), np.array([8.0]), np.array([8.0]),
                                   np.ones((N, N), np.complex64)))
    elif case == "text":
        path.write_text("not hdf5")
    elif case == "nan":
        _nan_patches(path)
    out = tmp_path / "o.npz"
    result = stitch_cli(invoke, path, "--out", out)
    assert result.exit_code == 3, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(path) in errors[0] and result.stderr.strip().endswith(errors[0])
    assert "Traceback" not in result.output and not out.exists()
    expected = {"missing": "not found", "dataset": "not a patches file", "text": "HDF5", "nan": "NaN"}[case]
    assert expected in errors[0]


@pytest.mark.parametrize("C", [1, 4])
def test_lsq_undoes_the_interpolation_blur_of_subpixel_windows(tmp_path, C):
    """Exact windows of a rough object at random sub-pixel positions: the overlap average blurs
    (each pixel mixes its neighbours), the least-squares solve returns the object itself."""
    rng = np.random.default_rng(20 + C)
    x, y = rng.uniform(N / 2, 64 - N / 2, 120), rng.uniform(N / 2, 64 - N / 2, 120)
    rough = random_object((64, 64), seed=C)
    patches = write_patches(tmp_path / "p.h5", rough, x, y, C)
    errors = {}
    for method in ("average", "lsq"):
        out = tmp_path / f"{method}.npz"
        stitch(StitchConfig(method=method, lsq_iterations=30), patches, out, figures=False)
        image = read_object(out)
        assert image.metadata["method"] == method
        inner = np.zeros(image.shape, bool)
        inner[12:-12, 12:-12] = True  # well inside the scanned area
        err = np.abs(image.object - truth_on_canvas(rough, image))[inner & image.support]
        errors[method] = float(np.median(err)), float(np.sqrt(np.mean(err**2)))
    assert errors["average"][0] > 0.1  # a rough object: the interpolation blur is large
    assert errors["lsq"][0] < LSQ_MEDIAN_ERROR  # ... and gone
    assert errors["lsq"][1] < LSQ_RMS_FRACTION * errors["average"][1]  # thin pixels keep the average


@pytest.mark.parametrize(("C", "expected"), [(1, "lsq"), (4, "average")])
def test_auto_method_solves_single_member_patches_and_averages_groups(tmp_path, C, expected):
    """Gridsize 1: one patch per position, least squares sharpens it. Groups: every position comes
    in several members' patches, whose average is the better estimate."""
    rng = np.random.default_rng(C)
    x, y = rng.uniform(N / 2, 48 - N / 2, 30), rng.uniform(N / 2, 48 - N / 2, 30)
    out = tmp_path / "o.npz"
    stitch(StitchConfig(), write_patches(tmp_path / "p.h5", random_object((48, 48)), x, y, C), out, figures=False)
    assert StitchConfig().method == "auto" and read_object(out).metadata["method"] == expected


def test_scan_spacing_is_the_raster_step_whatever_the_grouping():
    from ptycho.workflows.stitch_canvas import scan_spacing_px

    x, y = grid_positions(72, 6.0)
    assert scan_spacing_px(x, y) == pytest.approx(6.0)
    members = (np.arange(len(x))[:, None] + np.arange(4)[None, :]) % len(x)  # each position in 4 groups
    assert scan_spacing_px(x[members], y[members]) == pytest.approx(6.0)
    assert np.isnan(scan_spacing_px(np.array([3.0]), np.array([4.0])))


@pytest.mark.parametrize(("step", "crop"), [(4.0, N // 2), (12.0, 14)])
def test_default_crop_follows_the_scan_step_so_sparse_scans_leave_no_holes(tmp_path, step, crop):
    """Dense raster: the default N/2. Sparse raster (step 12 > N/2 = 8): N/2 would leave 4-px
    gaps between crops; the default grows to step + 2 and the crops tile the scanned area."""
    obj = random_object((72, 72), seed=5)
    x, y = grid_positions(72, step)
    out = tmp_path / "object.npz"
    result = stitch(StitchConfig(), write_patches(tmp_path / "p.h5", obj, x, y, 1), out)
    image = read_object(out)
    assert result.crop == crop and image.metadata["crop"] == crop
    assert image.metadata["crop_source"] == ("scan spacing" if crop > N // 2 else "N/2")
    assert image.support.all()  # one block: every pixel between the outermost crops is covered
    np.testing.assert_allclose(image.object, truth_on_canvas(obj, image), rtol=EXACT_RTOL)
    given = stitch(StitchConfig(crop=N // 2), write_patches(tmp_path / "q.h5", obj, x, y, 1), tmp_path / "given.npz")
    assert given.crop == N // 2 and read_object(tmp_path / "given.npz").support.all() == (step <= N // 2)


@pytest.mark.parametrize(("diameter", "crop", "source"), [(4.3, 5, "probe diameter"), (40.0, N // 2, "N/2"),
                                                          (2.2, 5, "scan spacing")])
def test_default_crop_shrinks_to_a_focused_probe(tmp_path, diameter, crop, source):
    """A probe whose effective diameter (written by infer) is below N/2 lights only the middle of
    its window: the default crop is that diameter, rounded up, still grown to the scan step + 2."""
    obj = random_object((48, 48), seed=6)
    x, y = grid_positions(48, 3.0)
    patches = write_patches(tmp_path / "p.h5", obj, x, y, 1, {"probe_diameter_px": diameter})
    result = stitch(StitchConfig(), patches, tmp_path / "o.npz", figures=False)
    image = read_object(tmp_path / "o.npz")
    assert result.crop == crop and image.metadata["crop"] == crop and image.metadata["crop_source"] == source
    assert image.metadata["probe_diameter_px"] == diameter
    assert image.support.all()
    np.testing.assert_allclose(image.object, truth_on_canvas(obj, image), rtol=EXACT_RTOL)
    assert StitchConfig(crop=7).crop_size(N, 3.0, diameter) == 7  # a given crop wins
