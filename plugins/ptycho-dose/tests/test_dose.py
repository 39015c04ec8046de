"""``ptycho dose`` through the installed entry point: the 2×2 study at tiny size, its table and
six-panel figure, its A/B variants, ``PTYCHO_DISABLE_PLUGINS``, failures and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ptycho_cli.testing import invoke as ptycho

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "src" / "ptycho_dose"
TINY = ["--N", "32", "--size", "64", "--n-images", "32", "--epochs", "1",
        "--set", "pipeline.train.jit=false", "--set", "pipeline.infer.jit=false", "--set", "figure_dpi=40"]
"""The study shrunk to seconds: 32 positions on a 64-px object, one epoch, no XLA."""


@pytest.fixture(autouse=True)
def _plugins_enabled(monkeypatch):
    monkeypatch.delenv("PTYCHO_DISABLE_PLUGINS", raising=False)


def test_two_by_two_study_writes_table_and_six_panel_figure(tmp_path):
    out = tmp_path / "dose"
    result = ptycho("dose", "--out", out, *TINY, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "ptycho-dose-study" and "same object" in data["split"]
    arms = {r["name"]: r for r in data["arms"]}
    assert list(arms) == ["high-nll", "high-mae", "low-nll", "low-mae"]
    for name, row in arms.items():
        assert row["ok"] and not row["nan"]["any"], (name, row["error"])
        assert row["variant"] == f"dose-{name}" and row["loss"] == name.split("-")[1]
        # a model trained this briefly may score anything: the table holds real SSIMs, not quality
        assert -1 <= row["amplitude"]["ssim"] <= 1 and -1 <= row["phase"]["ssim"] <= 1 and row["train_seconds"] > 0
        assert row["amplitude_mean_ratio"] is not None and row["final_loss"] is not None
    assert arms["high-nll"]["nphotons"] == 1e9 and arms["low-mae"]["nphotons"] == 1e4
    for name in ("metrics.md", "metrics.json", "study.config.yaml"):
        assert (out / name).stat().st_size > 0, name
    from matplotlib.image import imread

    for name in ("dose_comparison.png", "dose_comparison_phase.png"):  # 2 doses × 3 panels of 3.6 × 3.2 in at 40 dpi
        assert imread(out / name).shape[:2] == (round(2 * 3.2 * 40), round(3 * 3.6 * 40)), name
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["high-mae", "high-nll", "low-mae", "low-nll"]
    table = (out / "metrics.md").read_text()
    assert "| photons | NLL | MAE |" in table and "| 1e+04 (low) |" in table
    assert "![dose_comparison](dose_comparison.png)" in table


def test_figure_has_a_log_pattern_and_a_reconstruction_per_loss(tmp_path):
    """Six panels for two doses × (pattern + two losses); a failed arm gets a text panel."""
    import numpy as np
    from ptycho_dose import DoseConfig
    from ptycho_dose.study import dose_figure, dose_panels

    cfg = DoseConfig()
    blank = {"ssim": None, "psnr": None, "mae": None}
    rows = [{"name": f"{d}-{l}", "nphotons": p, "loss": l, "failed_stage": "train", "error": "NumericalError: NaN",
             "amplitude": blank, "phase": blank} for d, p in (("high", 1e9), ("low", 1e4)) for l in ("nll", "mae")]
    patterns = {1e9: np.full((32, 32), 1e5), 1e4: np.ones((32, 32))}
    panels = dose_panels(cfg, rows, {}, patterns, part="amplitude").axes[:6]
    for row, dose in enumerate(("1e+09", "1e+04")):
        pattern, *losses = panels[3 * row:3 * row + 3]
        assert len(pattern.images) == 1 and pattern.get_title().startswith(f"{dose} photons: pattern")
        np.testing.assert_allclose(pattern.images[0].get_array(), np.log10(1 + patterns[float(dose)]))
        for ax, loss in zip(losses, ("NLL", "MAE")):
            assert not ax.images and not ax.axison
            assert [t.get_text() for t in ax.texts] == [f"{dose} photons, {loss}\nfailed at train: NumericalError: NaN"]
    path = dose_figure(tmp_path / "f.png", cfg, rows, {}, patterns, part="amplitude")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_layers_dose_and_loss():
    from ptycho_dose import DoseConfig, plan

    arms = plan(DoseConfig(doses=(1e9, 1e6, 1e4), pipeline={"train": {"loss": "nll", "epochs": 3}}))
    assert [a.name for a in arms] == ["high-nll", "high-mae", "1e+06-nll", "1e+06-mae", "low-nll", "low-mae"]
    low_mae = arms[-1].config
    assert low_mae.train.loss == "mae" and low_mae.simulate.nphotons == 1e4 and low_mae.train.epochs == 3
    assert low_mae.simulate.noise and low_mae.simulate.object.kind == "lines"


def test_listed_with_its_command_and_variants():
    result = ptycho("plugins", "--json")
    assert result.exit_code == 0, result.output
    record = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "dose")
    assert record["version"] == "0.1.0" and not record["builtin"]
    assert record["provides"] == {"commands": ["dose"],
                                  "variants": ["dose-high-nll", "dose-high-mae", "dose-low-nll", "dose-low-mae"]}
    assert record["hooks"] == ["ptycho_ab_variants", "ptycho_commands"]


def test_variants_resolve_as_debug_ab_arms():
    from ptycho.config.pipeline import DebugABConfig
    from ptycho.debug.variants import ArmSpec
    from ptycho.workflows.debug_ab import resolve_arms
    from ptycho_cli.plugins import get_plugin_manager

    components = get_plugin_manager().components()
    a, b = resolve_arms(DebugABConfig(), ArmSpec("A", "dose-low-nll"), ArmSpec("B", "dose-low-mae"), components)
    assert (a.config.simulate.nphotons, a.config.train.loss) == (1e4, "nll")
    assert (b.config.simulate.nphotons, b.config.train.loss) == (1e4, "mae")


def test_disabled_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("PTYCHO_DISABLE_PLUGINS", "dose")
    result = ptycho("dose", "--help")
    assert result.exit_code == 2 and "No such command" in result.output
    listed = json.loads(ptycho("plugins", "--json").stdout)
    assert "dose" not in {p["name"] for p in listed["plugins"]}


@pytest.mark.parametrize(("args", "needle"), [
    (("--losses", "l2"), "dose.losses"),
    (("--doses", "1e9,-1"), "not a positive"),
    (("--doses", "1e4,1e4"), "given twice"),
    (("--set", "pipeline.simulate.N=33"), "simulate.N"),
])
def test_config_errors_are_one_line_exit_2(tmp_path, args, needle):
    result = ptycho("dose", "--out", tmp_path / "d", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not (tmp_path / "d").exists()


def test_failed_arms_are_recorded_and_all_failed_exits_with_their_code(tmp_path, monkeypatch):
    from ptycho.errors import NumericalError
    from ptycho.workflows import pipeline

    def diverge(stage, *args, **kwargs):
        raise NumericalError("training diverged: non-finite loss (NaN) in epoch 1")

    monkeypatch.setattr(pipeline, "run_stage", diverge)
    out = tmp_path / "d"
    result = ptycho("dose", "--out", out, *TINY, "--losses", "mae", "-q")
    assert result.exit_code == 4, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert all(not r["ok"] and r["nan"]["any"] and r["failed_stage"] == "simulate" for r in data["arms"])
    assert "failed at simulate" in (out / "metrics.md").read_text()
    assert (out / "dose_comparison.png").is_file()


def test_help_does_not_import_tensorflow_nor_click():
    code = ("import sys; from ptycho_cli.app import main\n"
            "assert main(['dose', '--help']) == 0\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
            "heavy = {'scipy', 'matplotlib', 'skimage'} & set(sys.modules)\n"
            "assert not heavy, f'imported at --help: {heavy}'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PTYCHO_DISABLE_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "--full" in proc.stdout
    for path in PLUGIN_SRC.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import click" not in text and "from click" not in text, path
        assert "ptycho_cli." not in text.replace("ptycho_cli.api", ""), f"{path}: use ptycho_cli.api only"
