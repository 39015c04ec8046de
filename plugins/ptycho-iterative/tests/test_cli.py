"""``ptycho iterative`` through the installed entry point: plugin listing, outputs, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "src" / "ptycho_iterative"


@pytest.fixture
def ptycho():
    """Run ``ptycho ARGS`` in-process with the installed entry points (as a user would)."""
    from ptycho_cli.app import make_app

    def run(*args):
        app = make_app(load_entry_points=True, env={})
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def test_listed_by_ptycho_plugins_from_its_entry_point(ptycho):
    result = ptycho("plugins", "--json")
    assert result.exit_code == 0, result.output
    record = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "iterative")
    assert record["provides"] == {"commands": ["iterative"]}
    assert record["version"] == "0.1.0" and not record["builtin"]


def test_reconstructs_writes_outputs_and_evaluates(ptycho, small_dataset, tmp_path):
    out = tmp_path / "object.npz"
    result = ptycho("iterative", small_dataset, "--out", out, "--iterations", 20, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["engine"] == "rpie" and summary["iterations"] == 20 and len(summary["errors"]) == 20
    assert summary["final error"] < summary["first error"]
    for name in ("object.npz", "object.config.yaml", "object.amplitude.png", "object.phase.png"):
        assert (tmp_path / name).is_file(), name
    evaluated = ptycho("evaluate", out, "--truth", small_dataset, "--out", tmp_path / "eval", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["results"]["amplitude"]["ssim"] > 0.9


def test_resolved_config_reproduces_the_run(ptycho, small_dataset, tmp_path):
    from ptycho.io.objects import read_object

    first = tmp_path / "a.npz"
    args = ("--engine", "epie", "--iterations", 3, "--batch-size", 5, "--seed", 4, "--probe-update", "--no-figures", "-q")
    assert ptycho("iterative", small_dataset, "--out", first, *args).exit_code == 0
    assert (tmp_path / "a.probe.npz").is_file()
    again = tmp_path / "b.npz"
    result = ptycho("iterative", small_dataset, "--out", again, "--config", tmp_path / "a.config.yaml", "--no-figures", "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_object(first).object, read_object(again).object)
    assert read_object(again).metadata["options"]["engine"] == "epie"


def test_set_overrides_and_crop_to_scan(ptycho, small_dataset, tmp_path):
    from ptycho.io.objects import read_object

    out = tmp_path / "c.h5"
    result = ptycho("iterative", small_dataset, "--out", out, "--set", "iterations=2", "--crop-to-scan", "--no-figures", "-q")
    assert result.exit_code == 0, result.output
    image = read_object(out)
    assert image.metadata["options"]["iterations"] == 2 and image.origin_x > 0 and image.shape[1] < 80


def test_ml_engine_from_the_command_line(ptycho, small_dataset, tmp_path):
    from ptycho.io.objects import read_object

    out = tmp_path / "ml.npz"
    result = ptycho("iterative", small_dataset, "--out", out, "--engine", "ml", "--iterations", 5,
                    "--regulariser", "gradient", "--regulariser-weight", 3, "--no-figures", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["engine"], summary["regulariser"], summary["regulariser weight"], summary["batch size"]) == ("ml", "gradient", 3.0, 64)
    assert summary["final error"] < summary["first error"]
    meta = read_object(out).metadata
    assert meta["regulariser_weight"] == 3.0 and "maximum likelihood" in meta["update"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("missing.h5", "--out", "o.npz"), 3, "missing.h5"),
        (("{data}", "--out", "o.npz", "--engine", "dm"), 2, "iterative.engine"),
        (("{data}", "--out", "o.npz", "--alpha", "-1"), 2, "iterative.alpha"),
        (("{data}", "--out", "o.npz", "--engine", "ml", "--regulariser", "l1"), 2, "iterative.regulariser"),
        (("{data}", "--out", "o.txt"), 2, "suffix"),
    ],
)
def test_errors_are_one_line_with_exit_codes(ptycho, small_dataset, tmp_path, monkeypatch, args, code, needle):
    monkeypatch.chdir(tmp_path)
    result = ptycho("iterative", *(a.format(data=small_dataset) for a in args))
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(("extra", "role"), [((), "dataset"), (("--probe", "{out}"), "probe file")])
def test_an_output_that_is_an_input_is_refused_untouched(ptycho, small_dataset, tmp_path, extra, role):
    """As for the built-in commands (issue 13): ``--out`` naming the dataset or the probe file
    would destroy it; exit 2 before any work, the file byte for byte as it was."""
    data = tmp_path / "d.npz"
    data.write_bytes(small_dataset.read_bytes())
    out = data if role == "dataset" else tmp_path / "p.npz"
    if out != data:
        out.write_bytes(small_dataset.read_bytes())  # a dataset is a probe file too
    before = out.read_bytes()
    result = ptycho("iterative", data, "--out", out, *(a.format(out=out) for a in extra))
    assert result.exit_code == 2, result.output
    assert f"is the {role} it reads" in result.stderr and out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({data.name, out.name})


def test_help_and_plugins_do_not_import_tensorflow():
    code = (
        "import sys; from ptycho_cli.app import main\n"
        "for args in (['--help'], ['iterative', '--help']):\n"
        "    assert main(args) == 0, args\n"
        "heavy = {'tensorflow', 'scipy', 'matplotlib', 'skimage'} & set(sys.modules)\n"
        "assert not heavy, f'imported at --help: {heavy}'\n"
        "assert main(['plugins']) == 0\n"  # lists the core's components too (scipy is fine there)
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "iterative" in proc.stdout


def test_plugin_code_does_not_import_click():
    for path in PLUGIN_SRC.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import click" not in text and "from click" not in text, path


def test_every_field_flag_is_an_option_and_a_config_field():
    """The table guard uses to print the core's field names as this command's flags."""
    import typer.main

    from ptycho.config.iterative import IterativeConfig
    from ptycho_cli.app import make_app
    from ptycho_iterative.plugin import FLAGS

    command = typer.main.get_command(make_app(load_entry_points=True, env={})).commands["iterative"]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for dotted, flag in FLAGS.items():
        assert flag in options and dotted.split(".", 1)[1] in IterativeConfig.model_fields, dotted


@pytest.mark.filterwarnings("ignore:.*probe window outside:UserWarning")
def test_refine_positions_writes_them_with_the_object_for_export(ptycho, small, tmp_path):
    """Positions perturbed by known sub-pixel offsets come back near the truth; the object file
    carries them and export-ptychodus writes them (zero mean offset, within the bound)."""
    from dataclasses import replace

    from ptycho.io.datasets import save_dataset
    from ptycho.io.objects import read_object
    from ptycho.io.ptychodus import read_ptychodus_product

    rng = np.random.default_rng(7)
    moved = replace(small, x=small.x + rng.normal(0, 0.5, small.n_patterns), y=small.y + rng.normal(0, 0.5, small.n_patterns),
                    metadata={**small.metadata, "photon_energy_eV": 8000.0, "detector_distance_m": 2.0,
                              "pixel_size_m": 1e-8})
    data = save_dataset(tmp_path / "moved.npz", moved)
    out = tmp_path / "object.npz"
    result = ptycho("iterative", data, "--out", out, "--iterations", 40, "--refine-positions", "--set",
                    "position_start=5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["positions"].startswith("refined: RMS shift") and (tmp_path / "object.refinement.png").is_file()
    image = read_object(out)
    assert image.positions is not None and list(image.positions.index) == list(range(small.n_patterns))
    ex, ey = image.positions.x - small.x, image.positions.y - small.y
    err = np.sqrt(np.mean((ex - ex.mean()) ** 2 + (ey - ey.mean()) ** 2))
    before = np.sqrt(np.mean((moved.x - small.x) ** 2 + (moved.y - small.y) ** 2))
    assert err < 0.35 * before, (err, before)
    assert abs(np.mean(image.positions.x - moved.x)) < 1e-9 and np.abs(image.positions.x - moved.x).max() <= 2.0
    product = tmp_path / "product.h5"
    exported = ptycho("export-ptychodus", out, "--dataset", data, "--out", product, "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["positions from"].startswith("object (refined")
    back = read_ptychodus_product(product)
    np.testing.assert_allclose(back.x, image.positions.x - image.origin_x, atol=1e-6)


def test_probe_modes_are_reconstructed_and_written(ptycho, small_dataset, tmp_path):
    from ptycho.io.datasets import load_probe

    out = tmp_path / "modes.npz"
    result = ptycho("iterative", small_dataset, "--out", out, "--iterations", 3, "--probe-update", "--probe-modes", 2,
                    "--no-figures", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["probe modes"] == 2
    probe = load_probe(tmp_path / "modes.probe.npz")
    assert probe.shape == (2, 32, 32)
    bad = ptycho("iterative", small_dataset, "--out", out, "--probe-modes", 0)
    assert bad.exit_code == 2 and "iterative.probe_modes: Input should be greater than or equal to 1" in bad.stderr
