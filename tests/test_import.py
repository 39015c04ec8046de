"""``ptycho import``: exact round trips from CXI and tike layouts, zero-frequency detection,
crop/bin geometry, probe modes, and bad inputs (exit 3, one line, no file)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ptycho.io.datasets import load_dataset
from ptycho_cli.api import hookimpl
from ptycho.workflows.import_steps import object_pixel_size_m

ELECTRON_VOLT_J = 1.602176634e-19
DX = 2.0**-24  # object pixel (m): a power of two, so metres ↔ pixels is exact in binary floating point


def _simulate(folder, N, n_images=12, size=None):
    from ptycho_cli.app import make_app

    out = folder / f"sim{N}.npz"
    args = ["simulate", "--N", str(N), "--size", str(size or 2 * N), "--n-images", str(n_images), "--nphotons", "1e6",
            "--seed", "3", "--no-preview", "--out", str(out), "-q"]
    result = CliRunner().invoke(make_app(env={}), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def sim32(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim"), 32)


@pytest.fixture(scope="module")
def sim64(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim"), 64, n_images=8)


def detector_pixel_for(energy_eV, distance_m, N):
    """A detector pixel for which the importer's λz/(N·dx) is exactly DX (energy as read back from J)."""
    energy_read = (energy_eV * ELECTRON_VOLT_J) / ELECTRON_VOLT_J
    pixel = (12398.419843320026 / energy_read) * 1e-10 * distance_m / (N * DX)
    for _ in range(64):
        got = object_pixel_size_m(energy_read, distance_m, N, pixel)
        if got == DX:
            return pixel
        pixel = np.nextafter(pixel, np.inf if got > DX else -np.inf)
    raise AssertionError("no detector pixel gives a power-of-two object pixel")


def write_cxi(path, patterns, x, y, probe=None, mask_bits=None, energy_eV=8000.0, distance_m=2.0, N=None):
    """A CXI 1.6 file as the format docs lay it out (data_1/data a link to the detector's data)."""
    N = N or patterns.shape[-1]
    pixel = detector_pixel_for(energy_eV, distance_m, N)
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = patterns
        det["distance"] = distance_m
        det["x_pixel_size"] = det["y_pixel_size"] = pixel
        if mask_bits is not None:
            det["mask"] = mask_bits.astype(np.uint32)
        f["entry_1/instrument_1/source_1/energy"] = energy_eV * ELECTRON_VOLT_J
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/sample_1/geometry_1/translation"] = np.stack([x * DX, y * DX, np.zeros_like(x)], axis=1)
        if probe is not None:
            f["entry_1/image_1/data"] = probe[None, None]
    return pixel


def known_arrays(sim):
    """Patterns, positions (first window at pixel 0, so x − (N−1)/2 is exact), probe of a dataset."""
    with load_dataset(sim) as ds:
        half = (ds.N - 1) / 2
        x = (ds.x - ds.x.min()) + half
        y = (ds.y - ds.y.min()) + half
        return ds.read_patterns(), x, y, np.asarray(ds.probe)


def test_cxi_round_trip_is_exact(invoke, sim32, tmp_path):
    patterns, x, y, probe = known_arrays(sim32)
    patterns[:, 3, 5] = 65535.0  # a saturated pixel, flagged in the mask: kept as stored, excluded as invalid
    bits = np.zeros((32, 32), np.uint32)
    bits[3, 5] = 0x2  # CXI_PIXEL_IS_SATURATED
    bits[10, 11] = 0x1000  # CXI_PIXEL_HAS_SIGNAL: a good pixel
    bits[20, 2] = 0x80  # CXI_PIXEL_IS_BAD
    cxi_x, cxi_y = x - 15.5, y - 15.5  # metres ÷ DX; the first window at the frame origin
    pixel = write_cxi(tmp_path / "scan.cxi", patterns, cxi_x, cxi_y, probe, bits)
    out = tmp_path / "scan.h5"
    result = invoke("import", tmp_path / "scan.cxi", "--out", out)
    assert result.exit_code == 0, result.output
    assert "cxi" in result.output and "centre (detected" in result.output
    with load_dataset(out) as ds:
        np.testing.assert_array_equal(ds.read_patterns(), patterns)
        np.testing.assert_array_equal(ds.x, x)  # exact, not approximate
        np.testing.assert_array_equal(ds.y, y)
        np.testing.assert_array_equal(ds.probe, probe)
        expected = np.ones((32, 32), bool)
        expected[3, 5] = expected[20, 2] = False
        np.testing.assert_array_equal(ds.mask, expected)
        meta = ds.metadata
    assert meta["pixel_size_m"] == DX and meta["detector_pixel_size_m"] == pixel
    assert meta["photon_energy_eV"] == pytest.approx(8000.0, rel=1e-15) and meta["detector_distance_m"] == 2.0
    assert meta["imported_from"]["format"] == "cxi" and meta["probe"]["rescaled"] is False
    assert any("CXI mask bit field" in step for step in meta["conversions"])


def tike_npz(path, sim, probe=None):
    with load_dataset(sim) as ds:
        half = (ds.N - 1) / 2
        np.savez(path, data=np.fft.ifftshift(ds.read_patterns(), axes=(-2, -1)),
                 scan=np.stack([ds.y - half, ds.x - half], axis=1),
                 probe=np.asarray(ds.probe)[None, None, None] if probe is None else probe, psi=ds.object[None])


def test_tike_layout_round_trip_is_the_original_dataset(invoke, sim32, tmp_path):
    tike_npz(tmp_path / "tike.npz", sim32)
    out = tmp_path / "back.npz"
    result = invoke("import", tmp_path / "tike.npz", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    with load_dataset(sim32) as a, load_dataset(out) as b:
        np.testing.assert_array_equal(b.read_patterns(), a.read_patterns())
        for key in ("x", "y", "probe", "object"):
            np.testing.assert_array_equal(getattr(b, key), getattr(a, key), err_msg=key)
        assert b.mask is None and b.probe_modes is None
        assert b.metadata["zero_frequency"] == {"source": "corner", "how": "tike-npz convention"}


def test_multi_mode_probe_keeps_every_mode(invoke, sim32, tmp_path):
    with load_dataset(sim32) as ds:
        main = np.asarray(ds.probe)
    second = (0.5 * np.roll(main, 3, axis=1)).astype(np.complex64)  # 20 % of the power
    modes = np.stack([second, main])[None, None]  # tike (1, 1, SHARED, n, n), dominant mode second
    tike_npz(tmp_path / "modes.npz", sim32, probe=modes)
    result = invoke("import", tmp_path / "modes.npz", "--out", tmp_path / "m.h5")
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "m.h5") as ds:  # a mixed state: every mode, as the file orders them
        np.testing.assert_array_equal(ds.probe, modes[0, 0])
        assert ds.probe_modes is None
        assert ds.metadata["probe"]["dominant_mode"] == 1 and ds.metadata["probe"]["modes"] == 2
        np.testing.assert_allclose(ds.metadata["probe"]["mode_power_fractions"], [0.2, 0.8], rtol=1e-5)


@pytest.mark.parametrize("method", ["crop", "bin"])
def test_crop_and_bin_shapes_geometry_and_metadata(invoke, sim64, tmp_path, method):
    patterns, x, y, probe = known_arrays(sim64)
    write_cxi(tmp_path / "big.cxi", patterns, x - 31.5, y - 31.5, probe, N=64)
    out = tmp_path / f"{method}.h5"
    # this probe fills its 64² window: half the field of view loses a third of its power
    result = invoke("import", tmp_path / "big.cxi", "--out", out, "--N", "32", "--reduce", method)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "binning cuts" in line]
    assert [line.startswith("warning: ") for line in warned] == ([True] if method == "bin" else [])
    with load_dataset(out) as ds:
        got, meta = ds.read_patterns(), ds.metadata
        assert got.shape == (len(x), 32, 32) and ds.probe.shape == (32, 32) and ds.object is None
        if method == "crop":
            np.testing.assert_array_equal(got, patterns[:, 16:48, 16:48])
            assert meta["pixel_size_m"] == 2 * DX  # same field of view, half the pixels
            np.testing.assert_allclose(ds.x, (x - 31.5) / 2 + 15.5, rtol=0, atol=1e-12)
        else:
            np.testing.assert_allclose(got.sum(axis=(1, 2)), patterns.sum(axis=(1, 2)), rtol=1e-6)
            np.testing.assert_allclose(got[:, 5, 7], patterns[:, 10:12, 14:16].sum(axis=(1, 2)), rtol=1e-6)
            assert meta["pixel_size_m"] == pytest.approx(DX, rel=1e-12)  # binning keeps the object pixel
            assert meta["detector_pixel_size_m"] == 2 * detector_pixel_for(8000.0, 2.0, 64)  # b× the detector pixel
            np.testing.assert_allclose(ds.x, x - 31.5 + 15.5, rtol=0, atol=1e-9)
        assert meta["detector"] == {**meta["detector"], "source_shape": [64, 64], "reduce": method,
                                    "factor": 2 if method == "bin" else 1}
        assert any(f"by {method}" in step for step in meta["conversions"])


def test_zero_frequency_detection_both_layouts_and_ambiguous(sim32):
    from ptycho.data.detector import detect_dc

    with load_dataset(sim32) as ds:
        mean = ds.read_patterns().mean(axis=0)
    valid = np.ones((32, 32), bool)
    assert detect_dc(mean, valid).layout == "centre"
    assert detect_dc(np.fft.ifftshift(mean), valid).layout == "corner"
    flat = np.random.default_rng(0).poisson(50.0, (32, 32)).astype(float)
    found = detect_dc(flat, valid)
    assert found.layout is None and 0.25 < found.ratio < 4


def expect_refusal(result, out, *words):
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.stem}*"))  # no file, no temporary left


def test_bad_inputs_exit_3_with_one_line_and_no_file(invoke, sim32, tmp_path):
    out = tmp_path / "out.h5"
    np.savez(tmp_path / "foreign.npz", frames=np.ones((3, 8, 8)), where=np.zeros((3, 2)))
    expect_refusal(invoke("import", tmp_path / "foreign.npz", "--out", out), out, "unknown layout", "frames")
    with load_dataset(sim32) as ds:
        np.savez(tmp_path / "short.npz", data=np.fft.ifftshift(ds.read_patterns(), axes=(-2, -1)),
                 scan=np.zeros((ds.n_patterns - 1, 2)), probe=ds.probe)
    expect_refusal(invoke("import", tmp_path / "short.npz", "--out", out), out, "inconsistent shapes", "scan")
    with load_dataset(sim32) as ds:
        broken = np.asarray(ds.probe).copy()
        broken[0, 0] = np.nan
        tike_npz(tmp_path / "nanprobe.npz", sim32, probe=broken)
    expect_refusal(invoke("import", tmp_path / "nanprobe.npz", "--out", out), out, "probe contains NaN")
    rng = np.random.default_rng(1)
    flat = rng.poisson(50.0, (6, 32, 32)).astype(np.float32)
    write_cxi(tmp_path / "flat.cxi", flat, np.arange(6.0), np.zeros(6))
    expect_refusal(invoke("import", tmp_path / "flat.cxi", "--out", out), out, "ambiguous zero frequency", "set --dc to")
    result = invoke("import", tmp_path / "flat.cxi", "--out", out, "--dc", "centre")  # told: accepted
    assert result.exit_code == 0, result.output
    assert "given (import.dc)" in result.output and "guess" in result.output  # no probe in the file: a guess


def test_output_is_never_the_input_or_an_existing_file(invoke, sim32, tmp_path):
    tike_npz(tmp_path / "t.npz", sim32)
    assert invoke("import", tmp_path / "t.npz", "--out", tmp_path / "t.npz").exit_code == 2
    (tmp_path / "done.h5").write_bytes(b"finished result")
    result = invoke("import", tmp_path / "t.npz", "--out", tmp_path / "done.h5")
    assert result.exit_code == 2 and "set --overwrite to replace it" in result.output
    assert (tmp_path / "done.h5").read_bytes() == b"finished result"
    assert invoke("import", tmp_path / "t.npz", "--out", tmp_path / "done.h5", "--overwrite").exit_code == 0


def test_photon_gauge_ignores_saturated_and_dead_pixels(sim32):
    from ptycho.data.detector import find_bad_pixels, photon_estimate

    with load_dataset(sim32) as ds:
        clean, probe = ds.read_patterns(), np.asarray(ds.probe)
    valid = np.ones((32, 32), bool)
    broken = clean.copy()
    hot_pixel, dead_pixel = (4, 25), (14, 17)  # dead: beside the bright centre, its neighbours ≫ 5 counts
    broken[:, hot_pixel[0], hot_pixel[1]] = 65535.0
    broken[:, dead_pixel[0], dead_pixel[1]] = 0.0
    hot, dead = find_bad_pixels(broken, valid)
    assert np.argwhere(hot).tolist() == [list(hot_pixel)] and np.argwhere(dead).tolist() == [list(dead_pixel)]
    assert not any(find_bad_pixels(clean, valid)[k].any() for k in (0, 1))  # nothing flagged in clean data
    usable = valid & ~hot & ~dead
    estimate = photon_estimate(broken, usable, probe)
    assert estimate == pytest.approx(photon_estimate(clean, valid, probe), rel=0.02)
    assert photon_estimate(broken, valid, probe) > 1.05 * estimate  # what the bad pixels would have done
    assert estimate == photon_estimate(clean, usable, probe)  # the corrupted values play no part at all


class BeamlinePlugin:
    """An in-process plugin adding one format through the ``ptycho_importers`` hook (docs/plugins.md)."""

    __name__ = "beamline-plugin"

    @staticmethod
    def sniff(path):
        try:
            with h5py.File(path, "r") as f:
                return "scan/frames" in f
        except OSError:
            return False

    @staticmethod
    def read(path):
        from ptycho.io.importers import ImportedScan

        f = h5py.File(path, "r")
        return ImportedScan(patterns=f["scan/frames"], format="mybeamline", dc="centre", x=f["scan/x_px"][()],
                            y=f["scan/y_px"][()], probe=f["scan/probe"][()][None], closer=f.close)

    @hookimpl
    def ptycho_importers(self):
        from ptycho_cli.api import ImporterSpec

        return [ImporterSpec("mybeamline", self.sniff, self.read, "MyBeamline HDF5", (".h5",)),
                ImporterSpec("cxi", self.sniff, self.read, "a clash with the built-in")]


def test_importer_hook_adds_a_format(invoke, sim32, tmp_path):
    import json

    with load_dataset(sim32) as ds:
        with h5py.File(tmp_path / "beam.h5", "w") as f:
            f["scan/frames"], f["scan/x_px"], f["scan/y_px"], f["scan/probe"] = ds.read_patterns(), ds.x, ds.y, ds.probe
        plugin = BeamlinePlugin()
        result = invoke("import", tmp_path / "beam.h5", "--out", tmp_path / "b.npz", "--json", plugins=[plugin])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["format"] == "mybeamline"
        assert "importer 'cxi' ignored, 'builtin.import_data' provides it" in result.stderr  # said during the run
        with load_dataset(tmp_path / "b.npz") as back:
            np.testing.assert_array_equal(back.read_patterns(), ds.read_patterns())
            np.testing.assert_array_equal(back.x, ds.x)
    listing = json.loads(invoke("plugins", "--json", plugins=[plugin]).stdout)
    record = next(p for p in listing["plugins"] if p["name"] == "beamline-plugin")
    assert record["provides"] == {"importers": ["mybeamline"]} and "ptycho_importers" in record["hooks"]
    assert listing["broken"] == []  # only the clashing record is dropped, not the plugin
    assert listing["clashes"] == [{"plugin": "beamline-plugin", "kind": "importer", "name": "cxi",
                                   "provided_by": "builtin.import_data"}]
    builtin = next(p for p in listing["plugins"] if p["name"] == "builtin.import_data")
    assert builtin["provides"]["importers"] == ["ptycho", "ptychodus", "ptychopinn-npz", "tike-npz", "ptychi-npz", "cxi"]
    result = invoke("import", tmp_path / "beam.h5", "--out", tmp_path / "c.h5", "--format", "nosuch")
    assert result.exit_code == 2 and "import.format: unknown importer 'nosuch'" in result.output


def test_a_masked_centre_is_ambiguous_not_a_corner(sim32):
    from ptycho.data.detector import detect_dc

    with load_dataset(sim32) as ds:
        mean = ds.read_patterns().mean(axis=0)
    beamstop = np.hypot(*np.mgrid[-16:16, -16:16]) > 5  # False over the central disc
    found = detect_dc(mean, beamstop)
    assert found.layout is None and np.isnan(found.ratio)
    assert detect_dc(mean, np.hypot(*np.mgrid[-16:16, -16:16]) > 2).layout == "centre"  # a small stop still tells


def test_ptychopinn_and_ptychodus_files_import_through_their_readers(invoke, sim32, tmp_path):
    with load_dataset(sim32) as ds:
        expected = ds.read_patterns()
        from ptycho.io.legacy import write_ptychopinn_npz

        write_ptychopinn_npz(tmp_path / "pinn.npz", ds)
    result = invoke("import", tmp_path / "pinn.npz", "--out", tmp_path / "from_pinn.h5", "--json")
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "from_pinn.h5") as back:
        np.testing.assert_allclose(back.read_patterns(), expected, rtol=1e-6)  # amplitudes² = counts
        assert back.metadata["imported_from"]["format"] == "ptychopinn-npz"
    valid = np.ones((32, 32), bool)
    valid[7, 8] = False
    with load_dataset(sim32) as ds:
        ds.mask = valid
        from ptycho.io.datasets import save_dataset

        save_dataset(tmp_path / "masked.npz", ds)
    stitched = tmp_path / "obj.npz"
    from ptycho.io.objects import ObjectImage, write_object

    with load_dataset(sim32) as ds:
        write_object(stitched, ObjectImage(ds.object, np.ones(ds.object.shape, bool), 0.0, 0.0, {}))
    result = invoke("export-ptychodus", stitched, "--dataset", tmp_path / "masked.npz", "--out",
                    tmp_path / "run" / "product.h5", "--with-diffraction", "--photon-energy-ev", "8000",
                    "--detector-distance-m", "2", "--pixel-size-m", "1e-8", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("import", tmp_path / "run", "--out", tmp_path / "from_ptychodus.h5", "--json")
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "from_ptychodus.h5") as back:
        np.testing.assert_array_equal(back.read_patterns(), expected)
        np.testing.assert_array_equal(back.mask, valid)  # bad_pixels written and read back as the mask
        assert back.metadata["imported_from"]["format"] == "ptychodus" and back.metadata["pixel_size_m"] == 1e-8


def test_ptychodus_reads_our_test_cxi_as_we_do(sim32, tmp_path):
    """Cross-check the CXI conventions against Ptychodus 1.7's own CXI readers."""
    from ptycho.io.importers.cxi import read_cxi
    from ptychodus.plugins.cxi_file import CXIDiffractionFileReader, CXIProductFileIO

    patterns, x, y, probe = known_arrays(sim32)
    bits = np.zeros((32, 32), np.uint32)
    bits[3, 5] = 0x2
    pixel = write_cxi(tmp_path / "scan.cxi", patterns, x - 15.5, y - 15.5, probe, bits)
    theirs = CXIDiffractionFileReader().read(tmp_path / "scan.cxi")
    meta = theirs.get_metadata()
    ours = read_cxi(tmp_path / "scan.cxi")
    try:
        assert meta.photon_energy_eV == pytest.approx(ours.photon_energy_eV, rel=1e-12)
        assert meta.detector_distance_m == ours.detector_distance_m
        assert meta.detector_pixel_geometry.width_m == ours.detector_pixel_m == pixel
        np.testing.assert_array_equal(~theirs.get_bad_pixels(), ours.mask)
        with h5py.File(tmp_path / "scan.cxi", "r") as f:
            positions = CXIProductFileIO()._read_positions(f)
        np.testing.assert_array_equal(positions.get_coordinates_x_m(), ours.x_m)
        np.testing.assert_array_equal(positions.get_coordinates_y_m(), ours.y_m)
    finally:
        ours.close()


def test_probe_file_and_its_power_set_from_the_counts(invoke, sim32, tmp_path):
    patterns, x, y, probe = known_arrays(sim32)
    dim = (patterns / 20).astype(np.float32)  # 20× fewer photons than the probe file says
    write_cxi(tmp_path / "dim.cxi", dim, x - 15.5, y - 15.5)  # no probe in the file
    result = invoke("import", tmp_path / "dim.cxi", "--out", tmp_path / "dim.h5", "--probe", sim32)
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "dim.h5") as ds:
        gauge = ds.metadata["probe"]
        assert gauge["source"] == f"file {sim32}" and gauge["rescaled"] and not ds.metadata["probe_is_guess"]
        assert np.sum(np.abs(ds.probe.astype(np.complex128)) ** 2) == pytest.approx(gauge["photons_estimated"], rel=1e-6)
        np.testing.assert_allclose(ds.probe, probe * np.sqrt(gauge["photons_estimated"] / gauge["power_in_file"]),
                                   rtol=1e-5, atol=1e-6)
        totals = np.sort(dim.sum(axis=(1, 2)))
        assert totals[0] <= gauge["photons_estimated"] <= totals[-1]  # the median of the pattern totals
    result = invoke("import", tmp_path / "dim.cxi", "--out", tmp_path / "kept.h5", "--probe", sim32,
                    "--probe-power", "keep")
    assert result.exit_code == 0, result.output
    with load_dataset(tmp_path / "kept.h5") as ds:
        np.testing.assert_array_equal(ds.probe, probe)
