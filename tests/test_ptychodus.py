"""``export-ptychodus`` and the Ptychodus import path (docs/reconstruction.md#export), checked against Ptychodus itself."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ptycho.config.export import ExportConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.io.datasets import load_dataset, load_probe, save_dataset
from ptycho.io.objects import ObjectImage, write_object
from ptycho.io.ptychodus import (
    DIFFRACTION_FILE, detector_pixel_size_m, is_ptychodus_product, read_ptychodus_product,
)
from ptycho.workflows.export import export_ptychodus

N = 16
SIZE = 48
M = 25
ENERGY_EV = 8000.0
DISTANCE_M = 2.0
PIXEL_M = 1e-8
POSITION_ATOL_PX = 1e-6
"""Positions must map back through Ptychodus' own mapping to this accuracy (the issue's bound)."""
METRES_RTOL = 1e-12


def complex_field(shape, seed):
    rng = np.random.default_rng(seed)
    return ((0.6 + 0.4 * rng.random(shape)) * np.exp(1j * rng.random(shape))).astype(np.complex64)


def make_dataset(path, *, metadata=None, seed=0, size=SIZE, n=N) -> Path:
    """A tiny dataset (random counts, positions whose windows lie inside the object)."""
    rng = np.random.default_rng(seed)
    half = (n - 1) / 2
    x = rng.uniform(half, size - 1 - half, M)
    y = rng.uniform(half, size - 1 - half, M)
    meta = {"photon_energy_eV": ENERGY_EV, "detector_distance_m": DISTANCE_M, "pixel_size_m": PIXEL_M}
    ds = Dataset(
        diffraction=rng.poisson(50.0, (M, n, n)).astype(np.float32), x=x, y=y,
        probe=complex_field((n, n), seed + 1) * 10, object=complex_field((size, size), seed + 2),
        metadata=meta if metadata is None else metadata,
    )
    return save_dataset(path, ds)


def make_object(path, dataset_path, *, origin=(4, 3), shape=(42, 44), metadata=None) -> ObjectImage:
    """A crop of the dataset's ground truth placed at ``origin`` (what stitch would write)."""
    with load_dataset(dataset_path) as ds:
        ox, oy = origin
        crop = ds.object[oy:oy + shape[0], ox:ox + shape[1]]
    image = ObjectImage(crop, np.ones(crop.shape, bool), float(ox), float(oy), metadata or {})
    write_object(path, image)
    return image


def make_bundle(path, *, probe=None, source="refined", epochs=(1, 2, 3), losses=(3.0, 2.5, 2.25), scale=None,
                format_version=8):
    """The files of a model bundle export reads (no network). ``source``: where training's probe came
    from (the ``probe`` record of format 7 on; older bundles say only whether it was refined)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"format": "ptycho-model", "format_version": format_version,
              "model": {"probe_trainable": source == "refined"}, "train": {}}
    if format_version >= 7:
        config["probe"] = {"source": source, "file": "guess.npz" if source == "file" else None}
    (path / "config.json").write_text(json.dumps(config))
    np.save(path / "probe.npy", complex_field((N, N), 99) * 5 if probe is None else probe)
    (path / "history.json").write_text(json.dumps({"epoch": list(epochs), "loss": list(losses), "val_loss": []}))
    if scale is not None:
        (path / "scale.json").write_text(json.dumps({"scale_correction": scale}))
    return path


@pytest.fixture
def inputs(tmp_path):
    data = make_dataset(tmp_path / "data.h5")
    image = make_object(tmp_path / "object.npz", data)
    return data, tmp_path / "object.npz", image


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------- read back with Ptychodus


def test_hdf5_product_reads_back_exactly_with_ptychodus(inputs, tmp_path):
    ptychodus_io = pytest.importorskip("ptychodus.api.io")
    data, object_path, image = inputs
    bundle = make_bundle(tmp_path / "model")
    out = tmp_path / "scan.h5"
    result = export_ptychodus(ExportConfig(), object_path, data, out, model_dir=bundle)
    assert result.windows_outside > 0  # the object is a crop: reported, not an error
    product = ptychodus_io.load_product(out)

    np.testing.assert_array_equal(product.object_.get_array(), image.object[None])
    trained = np.load(bundle / "probe.npy")
    np.testing.assert_array_equal(product.probes.get_array(), trained[None, None])
    assert result.probe_source == "model: refined in training (from the dataset's probe)"
    meta = product.metadata
    assert (meta.photon_energy_eV, meta.detector_distance_m) == (ENERGY_EV, DISTANCE_M)
    assert meta.probe_photon_count == pytest.approx(float(np.sum(np.abs(trained.astype(np.complex128)) ** 2)))
    geometry = product.object_.get_geometry()
    assert (geometry.pixel_width_m, geometry.pixel_height_m) == (PIXEL_M, PIXEL_M)
    assert product.probes.get_pixel_geometry().width_m == PIXEL_M
    with load_dataset(data) as ds:
        x_px = geometry.map_probe_positions_to_object_x_px(product.probe_positions)
        y_px = geometry.map_probe_positions_to_object_y_px(product.probe_positions)
        np.testing.assert_allclose(x_px, ds.x - image.origin_x, rtol=0, atol=POSITION_ATOL_PX)
        np.testing.assert_allclose(y_px, ds.y - image.origin_y, rtol=0, atol=POSITION_ATOL_PX)
        # the world frame is ptycho's global pixel frame in metres, whatever crop was exported
        np.testing.assert_allclose(product.probe_positions.get_coordinates_x_m(), ds.x * PIXEL_M, rtol=METRES_RTOL)
    assert list(product.probe_positions.get_indexes()) == list(range(M))
    assert [(loss.epoch, loss.value) for loss in product.losses] == [(1, 3.0), (2, 2.5), (3, 2.25)]
    assert len(product.object_.layer_spacing_m) == 0
    with h5py.File(out, "r") as f:  # extras of docs/formats.md#ptychodus-products that Ptychodus does not need
        assert f.attrs["probe_energy_eV"] == ENERGY_EV
        assert f["object_layer_spacing_m"].shape == (0,)


def test_npz_product_reads_back_exactly_with_ptychodus(inputs, tmp_path):
    npz_plugin = pytest.importorskip("ptychodus.plugins.npz_product_file")
    data, object_path, image = inputs
    out = tmp_path / "scan.npz"
    export_ptychodus(ExportConfig(exposure_time_s=0.1, name="run 7"), object_path, data, out)
    product = npz_plugin.NPZProductFileIO().read(out)
    np.testing.assert_array_equal(product.object_.get_array(), image.object[None])
    geometry = product.object_.get_geometry()
    with load_dataset(data) as ds:
        np.testing.assert_array_equal(product.probes.get_array(), ds.probe[None, None])
        np.testing.assert_allclose(geometry.map_probe_positions_to_object_x_px(product.probe_positions),
                                   ds.x - image.origin_x, rtol=0, atol=POSITION_ATOL_PX)
        np.testing.assert_allclose(geometry.map_probe_positions_to_object_y_px(product.probe_positions),
                                   ds.y - image.origin_y, rtol=0, atol=POSITION_ATOL_PX)
    assert product.metadata.name == "run 7"
    assert product.metadata.exposure_time_s == 0.1
    assert (product.metadata.photon_energy_eV, product.metadata.detector_distance_m) == (ENERGY_EV, DISTANCE_M)
    assert len(product.losses) == 0


def test_with_diffraction_makes_a_ptychodus_workflow_directory(inputs, tmp_path):
    ptychodus_io = pytest.importorskip("ptychodus.api.io")
    reconstruct = pytest.importorskip("ptychodus.api.reconstruct")
    data, object_path, _ = inputs
    folder = tmp_path / "workflow"
    result = export_ptychodus(ExportConfig(with_diffraction=True), object_path, data, folder / "product.h5")
    assert result.workflow_directory and result.diffraction_path == folder / DIFFRACTION_FILE
    layout = ptychodus_io.StandardFileLayout
    assembled = ptychodus_io.load_diffraction_data(layout.DIFFRACTION.path(folder))
    product = ptychodus_io.load_product(layout.PRODUCT.path(folder))
    paired = reconstruct.prepare_reconstruct_input(assembled, product)
    with load_dataset(data) as ds:
        np.testing.assert_array_equal(paired.diffraction_patterns, ds.read_patterns())
    pixel = assembled.get_pixel_geometry()
    assert pixel.width_m == pytest.approx(detector_pixel_size_m(ENERGY_EV, DISTANCE_M, N, PIXEL_M), rel=1e-12)
    # Ptychodus' Fraunhofer relation gives the object pixel back from the detector pixel
    from ptychodus.api.constants import energy_eV_to_wavelength_m
    assert energy_eV_to_wavelength_m(ENERGY_EV) * DISTANCE_M / (N * pixel.width_m) == pytest.approx(PIXEL_M, rel=1e-12)


def _two_mode_dataset(tmp_path):
    """The tiny dataset with a two-mode probe (its own probe and a weaker, flipped copy)."""
    path = make_dataset(tmp_path / "plain.h5")
    with load_dataset(path) as ds:
        modes = np.stack([ds.probe, 0.4j * ds.probe[::-1, ::-1]]).astype(np.complex64)
        return save_dataset(tmp_path / "modes.h5", Dataset(ds.read_patterns(), ds.x, ds.y, modes, ds.object,
                                                           metadata=ds.metadata)), modes


@pytest.mark.filterwarnings("ignore:.*workflow directory only when:UserWarning")
@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_two_probe_modes_reach_ptychodus_and_come_back(tmp_path, suffix):
    """Ptychodus' own readers see (1, K, N, N) incoherent modes; ptycho reads every mode back."""
    pytest.importorskip("ptychodus")
    from ptychodus.api.io import load_product
    from ptychodus.plugins.npz_product_file import NPZProductFileIO

    data, modes = _two_mode_dataset(tmp_path)
    out = tmp_path / "w" / f"product{suffix}"
    export_ptychodus(ExportConfig(with_diffraction=True), data, data, out)
    product = load_product(out) if suffix == ".h5" else NPZProductFileIO().read(out)
    assert product.probes.num_incoherent_modes == 2 and product.probes.num_coherent_modes == 1
    np.testing.assert_array_equal(product.probes.get_array(), modes[None])
    assert product.metadata.probe_photon_count == pytest.approx(float(np.sum(np.abs(modes.astype(complex)) ** 2)))
    with load_dataset(out) as back:
        np.testing.assert_array_equal(back.probe, modes)
    np.testing.assert_array_equal(load_probe(out), modes)


def test_a_two_mode_product_written_by_ptychodus_loads_with_both_modes(tmp_path):
    pytest.importorskip("ptychodus")
    from ptychodus.api.geometry import PixelGeometry
    from ptychodus.api.io import load_product, save_product
    from ptychodus.api.probe import ProbeSequence

    folder, *_ = _ptychodus_written_product(tmp_path)
    product = load_product(folder / "product.h5")
    single = product.probes.get_array()[0, 0]
    modes = np.stack([single, 0.3 * single.conj()]).astype(np.complex64)
    dx = product.probes.get_pixel_geometry().width_m
    save_product(folder / "product.h5", type(product)(
        metadata=product.metadata, probe_positions=product.probe_positions,
        probes=ProbeSequence(modes[None], None, PixelGeometry(dx, dx)), object_=product.object_,
        losses=product.losses))
    with load_dataset(folder / "product.h5") as ds:
        np.testing.assert_array_equal(ds.probe, modes)


# ----------------------------------------------------------------- round trips into ptycho


@pytest.mark.filterwarnings("ignore:.*workflow directory only when:UserWarning")
@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_round_trip_ptycho_product_ptycho_is_exact(tmp_path, suffix):
    data = make_dataset(tmp_path / "data.h5")
    folder = tmp_path / "out"
    out = folder / f"product{suffix}"
    # the dataset's own ground truth is the object (origin 0): positions come back unchanged
    export_ptychodus(ExportConfig(with_diffraction=True), data, data, out)
    assert is_ptychodus_product(out)
    with load_dataset(data) as a, load_dataset(out) as b:
        np.testing.assert_allclose(b.x, a.x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b.y, a.y, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(b.probe, a.probe)
        np.testing.assert_array_equal(b.object, a.object)
        np.testing.assert_array_equal(b.read_patterns(), a.read_patterns())
        assert (b.metadata["photon_energy_eV"], b.metadata["detector_distance_m"], b.metadata["pixel_size_m"]) == (
            ENERGY_EV, DISTANCE_M, PIXEL_M)
    if suffix == ".h5":  # the workflow folder itself loads as a dataset
        with load_dataset(folder) as c:
            assert c.n_patterns == M


def test_import_without_diffraction_gives_the_product_and_a_clear_dataset_error(inputs, tmp_path):
    data, object_path, image = inputs
    out = tmp_path / "alone" / "scan.h5"
    export_ptychodus(ExportConfig(), object_path, data, out)
    product = read_ptychodus_product(out)
    assert product.diffraction is None and product.object.shape == image.shape and product.probe.shape == (N, N)
    with load_dataset(data) as ds:
        np.testing.assert_allclose(product.x, ds.x - image.origin_x, atol=POSITION_ATOL_PX)
    with pytest.raises(DataError, match="diffraction.h5"):
        load_dataset(out)
    # simulate --probe file:product.h5 reads the probe (load_probe squeezes (1, 1, N, N))
    np.testing.assert_array_equal(load_probe(out), product.probe)


def _ptychodus_written_product(tmp_path, *, shuffle_patterns=False, bad_pixel=False):
    """A product and diffraction file written by Ptychodus' own writers."""
    pytest.importorskip("ptychodus")
    from ptychodus.api.assemble import AssembledDiffractionData
    from ptychodus.api.constants import energy_eV_to_wavelength_m
    from ptychodus.api.geometry import PixelGeometry
    from ptychodus.api.io import save_diffraction_data, save_product
    from ptychodus.api.object import Object, ObjectCenter
    from ptychodus.api.probe import ProbeSequence
    from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
    from ptychodus.api.product import LossValue, Product, ProductMetadata

    rng = np.random.default_rng(5)
    dx = 2e-8
    obj = complex_field((40, 36), 6)
    probe = complex_field((N, N), 7)
    indexes = np.arange(10, 10 + M)
    x_m = rng.uniform(-1e-7, 1e-7, M) + 3e-6  # an arbitrary world frame
    y_m = rng.uniform(-1e-7, 1e-7, M) - 1e-6
    positions = ProbePositionSequence([ProbePosition(int(i), float(a), float(b)) for i, a, b in zip(indexes, x_m, y_m)])
    metadata = ProductMetadata(name="ptychodus-made", comments="", detector_distance_m=1.5, photon_energy_eV=10000.0,
                               probe_photon_count=float(np.sum(np.abs(probe) ** 2)), exposure_time_s=0.5,
                               mass_attenuation_m2_per_kg=0.0, tomography_angle_deg=0.0)
    product = Product(metadata=metadata, probe_positions=positions,
                      probes=ProbeSequence(probe, None, PixelGeometry(dx, dx)),
                      object_=Object(obj, PixelGeometry(dx, dx), ObjectCenter(3e-6, -1e-6)),
                      losses=[LossValue(0, 1.0), LossValue(1, 0.5)])
    folder = tmp_path / "from_ptychodus"
    folder.mkdir()
    save_product(folder / "product.h5", product)
    counts = rng.poisson(20, (M, N, N)).astype(np.uint16)
    order = rng.permutation(M) if shuffle_patterns else np.arange(M)
    bad = np.zeros((N, N), bool)
    bad[3, 4] = bad_pixel
    detector_m = energy_eV_to_wavelength_m(metadata.photon_energy_eV) * metadata.detector_distance_m / (N * dx)
    save_diffraction_data(folder / "diffraction.h5", AssembledDiffractionData(
        indexes[order], counts[order], PixelGeometry(detector_m, detector_m), bad))
    geometry = product.object_.get_geometry()
    expected_x = geometry.map_probe_positions_to_object_x_px(positions)
    expected_y = geometry.map_probe_positions_to_object_y_px(positions)
    return folder, obj, probe, counts, expected_x, expected_y


@pytest.mark.parametrize("shuffle, bad", [(False, False), (True, True)])
def test_product_written_by_ptychodus_loads_into_ptycho(tmp_path, shuffle, bad):
    folder, obj, probe, counts, ex, ey = _ptychodus_written_product(tmp_path, shuffle_patterns=shuffle, bad_pixel=bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a consistent product loads silently, a bad pixel included
        ds = load_dataset(folder / "product.h5")
    with ds:
        np.testing.assert_array_equal(ds.object, obj)
        np.testing.assert_array_equal(ds.probe, probe)
        np.testing.assert_allclose(ds.x, ex, atol=1e-12)
        np.testing.assert_allclose(ds.y, ey, atol=1e-12)
        expected = counts.astype(np.float32)
        np.testing.assert_array_equal(ds.read_patterns(), expected)  # paired by scan index, stored counts kept
        if bad:  # the bad pixel becomes the one invalid pixel of the dataset's mask
            assert ds.mask is not None and not ds.mask[3, 4] and int(ds.mask.sum()) == ds.mask.size - 1
        else:
            assert ds.mask is None
        assert ds.metadata["photon_energy_eV"] == 10000.0 and ds.metadata["pixel_size_m"] == 2e-8
    product = read_ptychodus_product(folder / "product.h5")
    assert list(product.loss_values) == [1.0, 0.5] and product.exposure_time_s == 0.5


def test_npz_product_written_by_ptychodus_loads_into_ptycho(tmp_path):
    npz_plugin = pytest.importorskip("ptychodus.plugins.npz_product_file")
    from ptychodus.api.io import load_product

    folder, obj, probe, counts, ex, ey = _ptychodus_written_product(tmp_path)
    npz_plugin.NPZProductFileIO().write(folder / "scan.npz", load_product(folder / "product.h5"))
    product = read_ptychodus_product(folder / "scan.npz")
    np.testing.assert_array_equal(product.object, obj)
    np.testing.assert_array_equal(product.probe, probe)
    np.testing.assert_allclose(product.x, ex, atol=1e-12)
    assert product.name == "ptychodus-made"
    with load_dataset(folder / "scan.npz") as ds:  # finds diffraction.h5 beside it
        np.testing.assert_array_equal(ds.read_patterns(), counts.astype(np.float32))


def test_probe_pixel_differing_from_object_pixel_is_refused_on_import(inputs, tmp_path):
    data, object_path, _ = inputs
    out = tmp_path / "w" / "product.h5"
    export_ptychodus(ExportConfig(with_diffraction=True, probe_pixel_size_m=2 * PIXEL_M), object_path, data, out)
    with pytest.raises(DataError, match="probe pixel width"):
        load_dataset(out)


# ----------------------------------------------------------------- command line and errors


def test_cli_export_writes_product_config_and_summary(invoke, inputs, tmp_path):
    data, object_path, _ = inputs
    bundle = make_bundle(tmp_path / "model", source="dataset", scale=4.0)
    out = tmp_path / "run" / "product.h5"
    result = invoke("export-ptychodus", object_path, "--dataset", data, "--model", bundle, "--out", out,
                    "--with-diffraction", "--photon-energy-ev", "9000", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["workflow directory"] is True and summary["loss epochs"] == 3
    assert summary["photon energy (eV)"] == 9000.0  # the flag overrides the metadata
    product = read_ptychodus_product(out)
    with load_dataset(data) as ds:  # untrained probe: the dataset's, times √scale
        np.testing.assert_allclose(product.probe, ds.probe * 2.0, rtol=1e-6)
    resolved = yaml.safe_load((out.parent / "product.config.yaml").read_text())["export"]
    assert resolved["photon_energy_eV"] == 9000.0 and resolved["pixel_size_m"] == PIXEL_M
    assert ExportConfig.model_validate(resolved).with_diffraction
    assert (out.parent / DIFFRACTION_FILE).is_file() and no_temp_files(out.parent)


@pytest.mark.parametrize("source, format_version, expected", [
    ("file", 8, "model"),  # trained with a probe file: infer makes its input with the bundle's, so export writes it
    ("refined", 8, "model"), ("dataset", 8, "dataset"),
    ("refined", 6, "model"), ("dataset", 6, "dataset"),  # before the probe record: refined or not
])
def test_exported_probe_is_the_one_infer_uses(inputs, tmp_path, source, format_version, expected):
    data, object_path, _ = inputs
    bundle = make_bundle(tmp_path / "model", source=source, format_version=format_version)
    result = export_ptychodus(ExportConfig(), object_path, data, tmp_path / "p.h5", model_dir=bundle)
    product = read_ptychodus_product(tmp_path / "p.h5")
    with load_dataset(data) as ds:
        want = np.load(bundle / "probe.npy") if expected == "model" else np.asarray(ds.probe)
    np.testing.assert_array_equal(product.probe, want)
    assert result.probe_source.startswith(expected)


@pytest.mark.parametrize("missing, flag", [("photon_energy_eV", "--photon-energy-ev"),
                                           ("detector_distance_m", "--detector-distance-m"),
                                           ("pixel_size_m", "--pixel-size-m")])
def test_missing_metadata_names_the_flag_exit_3_and_writes_nothing(invoke, tmp_path, missing, flag):
    meta = {"photon_energy_eV": ENERGY_EV, "detector_distance_m": DISTANCE_M, "pixel_size_m": PIXEL_M}
    del meta[missing]
    data = make_dataset(tmp_path / "data.h5", metadata=meta)
    out = tmp_path / "out" / "product.h5"
    result = invoke("export-ptychodus", data, "--dataset", data, "--out", out, "--with-diffraction")
    assert result.exit_code == 3
    assert flag in result.stderr and missing in result.stderr
    assert not out.exists() and not (out.parent / DIFFRACTION_FILE).exists()
    value = {"photon_energy_eV": "1e4", "detector_distance_m": "1", "pixel_size_m": "1e-8"}[missing]
    assert invoke("export-ptychodus", data, "--dataset", data, "--out", out, flag, value, "--quiet").exit_code == 0


@pytest.mark.parametrize("probe, message", [
    (np.ones((N, N - 4), np.complex64), "square"),
    (np.ones((2 * N, 2 * N), np.complex64), "do not match"),
])
def test_non_square_or_mismatched_trained_probe_exit_3(invoke, inputs, tmp_path, probe, message):
    data, object_path, _ = inputs
    bundle = make_bundle(tmp_path / "model", probe=probe)
    result = invoke("export-ptychodus", object_path, "--dataset", data, "--model", bundle, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and message in result.stderr
    assert not (tmp_path / "p.h5").exists()


def test_mismatched_dataset_probe_exit_3(invoke, tmp_path):
    data = make_dataset(tmp_path / "data.h5")
    with h5py.File(data, "r+") as f:  # a probe that does not match the 16×16 patterns
        del f["probe"]
        f["probe"] = np.ones((N, N + 2), np.complex64)
    result = invoke("export-ptychodus", data, "--dataset", data, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "'probe' has shape (16, 18) but the patterns are 16×16" in result.stderr
    assert not (tmp_path / "p.h5").exists() and no_temp_files(tmp_path)


def test_positions_outside_the_object_exit_3(invoke, tmp_path):
    data = make_dataset(tmp_path / "data.h5")
    make_object(tmp_path / "far.npz", data, origin=(0, 0), shape=(20, 20))  # covers a corner only
    result = invoke("export-ptychodus", tmp_path / "far.npz", "--dataset", data, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "do not belong together" in result.stderr
    assert not (tmp_path / "p.h5").exists() and no_temp_files(tmp_path)


def test_object_stitched_from_another_dataset_exit_3(invoke, tmp_path):
    data = make_dataset(tmp_path / "data.h5")
    other = make_dataset(tmp_path / "other.h5", seed=3)
    with load_dataset(other) as ds:
        provenance = {"dataset": str(other), "dataset_fingerprint": ds.fingerprint()}
    make_object(tmp_path / "obj.npz", data, metadata={"provenance": provenance})
    result = invoke("export-ptychodus", tmp_path / "obj.npz", "--dataset", data, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "fingerprints differ" in result.stderr


def test_object_file_that_is_not_an_object_exit_3(invoke, tmp_path):
    data = make_dataset(tmp_path / "data.h5")
    np.savez(tmp_path / "nothing.npz", positions=np.zeros(3))
    result = invoke("export-ptychodus", tmp_path / "nothing.npz", "--dataset", data, "--out", tmp_path / "p.h5")
    assert result.exit_code == 3 and "no key 'object' or 'objectGuess'" in result.stderr
    assert not (tmp_path / "p.h5").exists() and no_temp_files(tmp_path)


@pytest.mark.parametrize("args", [["--format", "npz", "--out", "p.h5"], ["--out", "p.txt"]])
def test_format_and_suffix_mismatch_exit_2(invoke, tmp_path, args):
    data = make_dataset(tmp_path / "data.h5")
    args = [tmp_path / a if a.startswith("p.") else a for a in args]
    result = invoke("export-ptychodus", data, "--dataset", data, *args)
    assert result.exit_code == 2


def test_failure_while_writing_leaves_neither_file(inputs, tmp_path, monkeypatch):
    import ptycho.workflows.export as export_module

    data, object_path, _ = inputs

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "write_ptychodus_product", broken)
    out = tmp_path / "w" / "product.h5"
    with pytest.raises(OSError, match="disk full"):
        export_ptychodus(ExportConfig(with_diffraction=True), object_path, data, out)
    assert not out.exists() and not (out.parent / DIFFRACTION_FILE).exists() and no_temp_files(out.parent)


def test_simulate_accepts_a_ptychodus_product_probe(invoke, inputs, tmp_path):
    data, object_path, _ = inputs
    product = tmp_path / "probe_source.h5"
    export_ptychodus(ExportConfig(), object_path, data, product)
    out = tmp_path / "sim.npz"
    result = invoke("simulate", "--N", str(N), "--size", "40", "--n-images", "8", "--nphotons", "1e4", "--no-preview",
                    "--quiet", "--probe", f"file:{product}", "--out", out)
    assert result.exit_code == 0, result.output
    with load_dataset(data) as a, load_dataset(out) as b:  # same shape, renormalised to 1e4 photons
        np.testing.assert_allclose(b.probe, a.probe * np.sqrt(1e4 / np.sum(np.abs(a.probe) ** 2)), rtol=1e-4, atol=1e-6)


def test_inconsistent_detector_geometry_warns_on_import(inputs, tmp_path):
    data, object_path, _ = inputs
    out = tmp_path / "w" / "product.h5"
    export_ptychodus(ExportConfig(with_diffraction=True), object_path, data, out)
    with h5py.File(out.parent / DIFFRACTION_FILE, "r+") as f:
        f["patterns"].attrs["detector_pixel_width_m"] = 1e-4
    with pytest.warns(UserWarning, match="geometry is inconsistent"):
        read_ptychodus_product(out, out.parent / DIFFRACTION_FILE)


def test_companion_missing_patterns_for_some_positions_exit_3(invoke, inputs, tmp_path):
    data, object_path, _ = inputs
    out = tmp_path / "w" / "product.h5"
    export_ptychodus(ExportConfig(with_diffraction=True), object_path, data, out)
    with h5py.File(out.parent / DIFFRACTION_FILE, "r+") as f:
        f["indexes"][0] = 10_000
    with pytest.raises(DataError, match="no pattern for 1 of"):
        load_dataset(out)
