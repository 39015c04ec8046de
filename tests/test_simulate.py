"""``ptycho simulate`` end to end: files, determinism, metadata, configs and errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from ptycho.io.datasets import load_dataset

SMALL = ["--N", "32", "--size", "80", "--n-images", "24", "--quiet"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_user_example_works_with_defaults(invoke, tmp_path):
    out = tmp_path / "data.h5"
    result = invoke("simulate", "--object", "lines", "--gridsize", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data.config.yaml").is_file()
    assert (tmp_path / "data.preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with load_dataset(out) as ds:
        assert ds.N == 64 and ds.n_patterns == 512
        assert ds.metadata["gridsize"] == 2
        assert ds.metadata["nphotons"] == 1e9 and ds.metadata["seed"] == 0
        assert ds.metadata["overlap"]["overlap_mean"] > 0.5, "default random scan must overlap well"
        counts = ds.read_patterns(slice(0, 16))
        assert np.all(counts == np.round(counts)), "Poisson counts are whole numbers"
        assert np.sum(np.abs(ds.probe.astype(np.complex128)) ** 2) == pytest.approx(1e9, rel=1e-5)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_same_seed_gives_identical_files_and_another_seed_different_positions(invoke, tmp_path, suffix):
    a, b, c = (tmp_path / f"{n}{suffix}" for n in "abc")
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        assert invoke("simulate", *SMALL, "--no-preview", "--seed", seed, "--out", out).exit_code == 0
    assert _sha(a) == _sha(b)
    with load_dataset(a) as da, load_dataset(c) as dc:
        assert not np.allclose(da.x, dc.x)


def test_noise_free_data_honour_the_photon_budget(invoke, tmp_path):
    out = tmp_path / "exact.npz"
    result = invoke("simulate", *SMALL, "--no-preview", "--no-noise", "--nphotons", "1e6",
                    "--set", "object.amplitude_min=1", "--set", "object.phase_max_rad=0", "--out", out)
    assert result.exit_code == 0, result.output
    with load_dataset(out) as ds:
        totals = ds.read_patterns().sum(axis=(1, 2), dtype=np.float64)
        np.testing.assert_allclose(totals, 1e6, rtol=1e-5)
        assert ds.metadata["noise"] is False


def test_nphotons_inf_means_exact_data(invoke, tmp_path):
    out = tmp_path / "inf.npz"
    assert invoke("simulate", *SMALL, "--no-preview", "--nphotons", "inf", "--out", out).exit_code == 0
    with load_dataset(out) as ds:
        assert ds.metadata["noise"] is False
        assert not np.all(ds.read_patterns() == np.round(ds.read_patterns()))


@pytest.mark.parametrize("scan", ["grid", "random"])
@pytest.mark.parametrize("obj", ["lines", "grf", "points", "diagonals", "siemens"])
def test_every_object_and_scan_stays_inside_the_object(invoke, tmp_path, scan, obj):
    out = tmp_path / "d.npz"
    result = invoke("simulate", *SMALL, "--no-preview", "--object", obj, "--scan", scan, "--out", out)
    assert result.exit_code == 0, result.output
    with load_dataset(out, check_bounds="error") as ds:
        amp, phase = np.abs(ds.object), np.angle(ds.object)
        assert 0.6 - 1e-6 <= amp.min() and amp.max() <= 1.0 + 1e-6 and amp.std() > 0.01
        assert -1e-6 <= phase.min() and phase.max() <= 1.0 + 1e-6
        assert ds.n_patterns == 24


def test_grid_scan_has_whole_pixel_window_corners_and_the_given_step(invoke, tmp_path):
    out = tmp_path / "g.npz"
    assert invoke("simulate", *SMALL, "--no-preview", "--scan", "grid", "--step", "8", "--out", out).exit_code == 0
    with load_dataset(out) as ds:
        corners = ds.x - (ds.N - 1) / 2
        np.testing.assert_array_equal(corners, np.round(corners))
        assert set(np.round(np.diff(np.unique(ds.x)), 9)) == {8.0}


def test_image_object_and_file_probe(invoke, tmp_path):
    img = tmp_path / "img.npy"
    np.save(img, np.outer(np.linspace(0, 1, 50), np.ones(50)))
    first = tmp_path / "first.npz"
    assert invoke("simulate", *SMALL, "--no-preview", "--probe", "gaussian", "--object", f"image:{img}", "--out", first).exit_code == 0
    second = tmp_path / "second.npz"
    result = invoke("simulate", *SMALL, "--no-preview", "--probe", f"file:{first}", "--nphotons", "1e4", "--out", second)
    assert result.exit_code == 0, result.output
    with load_dataset(first) as a, load_dataset(second) as b:
        ratio = b.probe / a.probe
        mask = np.abs(a.probe) > 1e-3 * np.abs(a.probe).max()
        np.testing.assert_allclose(ratio[mask], np.sqrt(1e4 / 1e9), rtol=1e-4)
        assert np.abs(a.object)[0].mean() < np.abs(a.object)[-1].mean()


def test_resolved_config_reproduces_the_run(invoke, tmp_path):
    out = tmp_path / "run.npz"
    assert invoke("simulate", *SMALL, "--no-preview", "--object", "siemens", "--seed", "7", "--out", out).exit_code == 0
    resolved = tmp_path / "run.config.yaml"
    data = yaml.safe_load(resolved.read_text())
    assert data["simulate"]["object"]["kind"] == "siemens" and data["simulate"]["seed"] == 7
    again = tmp_path / "again.npz"
    assert invoke("simulate", "--config", resolved, "--no-preview", "--quiet", "--out", again).exit_code == 0
    assert _sha(out) == _sha(again)


def test_precedence_defaults_files_set_flags(invoke, tmp_path):
    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("simulate:\n  seed: 1\n  N: 32\n  scan: {n_images: 10}\n  object: {size: 80}\ntrain: {epochs: 3}\n")
    toml_file = tmp_path / "b.toml"
    toml_file.write_text("seed = 2\n[scan]\nn_images = 12\n")
    out = tmp_path / "p.npz"
    result = invoke("simulate", "--config", yaml_file, "--config", toml_file, "--set", "seed=5",
                    "--set", "simulate.scan.kind=grid", "--seed", "9", "--no-preview", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "p.config.yaml").read_text())["simulate"]
    assert cfg["seed"] == 9  # flag beats --set beats files
    assert cfg["scan"] == {**cfg["scan"], "n_images": 12, "kind": "grid"}  # later file wins, --set applies
    assert cfg["N"] == 32  # from the first file, untouched by the second


@pytest.mark.parametrize(
    "args,message",
    [
        (["--nphotons", "-1"], "simulate.nphotons"),
        (["--gridsize", "0"], "simulate.gridsize"),
        (["--N", "33"], "simulate.N: N must be even"),
        (["--set", "scan.nonsense=1"], "simulate.scan.nonsense"),
        (["--set", "noequals"], "expected dotted.key=value"),
        (["--object", "nosuch"], "unknown object 'nosuch'"),
        (["--gridsize", "3", "--n-images", "4"], "needs at least 9"),
        (["--size", "20"], "smaller than N"),
    ],
)
def test_bad_values_exit_2_naming_the_field(invoke, tmp_path, args, message):
    result = invoke("simulate", "--N", "32", "--n-images", "10", *args, "--out", tmp_path / "x.npz")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.npz").exists()


def test_bad_config_file_and_bad_data_files(invoke, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulate: [1, 2\n")
    result = invoke("simulate", "--config", bad, "--out", tmp_path / "x.npz")
    assert result.exit_code == 2 and "cannot parse" in result.output
    result = invoke("simulate", "--probe", f"file:{tmp_path / 'missing.npz'}", "--out", tmp_path / "x.npz")
    assert result.exit_code == 3 and "missing.npz" in result.output


def test_json_summary_and_legacy_format(invoke, tmp_path):
    out = tmp_path / "legacy.npz"
    result = invoke("simulate", *SMALL[:-1], "--no-preview", "--json", "--format", "ptychopinn-npz", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["patterns"] == 24
    with np.load(out, allow_pickle=False) as raw:
        assert "xcoords" in raw and "probeGuess" in raw
    with load_dataset(out) as ds:
        assert ds.n_patterns == 24 and ds.metadata.get("converted_from") == "ptychopinn-npz"
