"""``ptycho sim-lines-4x`` through the installed entry point: the study at tiny size, its table and
figures, its A/B variants, ``PTYCHO_DISABLE_PLUGINS``, failures and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho_cli.testing import invoke as ptycho

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "src" / "ptycho_sim_lines_4x"
TINY = ["--N", "32", "--size", "64", "--n-images", "32", "--epochs", "1",
        "--set", "pipeline.train.jit=false", "--set", "pipeline.infer.jit=false", "--set", "figure_dpi=40"]
"""Two-minute study shrunk to seconds: 32 positions on a 64-px object, one epoch, no XLA."""


@pytest.fixture(autouse=True)
def _plugins_enabled(monkeypatch):
    monkeypatch.delenv("PTYCHO_DISABLE_PLUGINS", raising=False)


def test_study_runs_and_writes_table_and_figures(tmp_path):
    out = tmp_path / "study"
    result = ptycho("sim-lines-4x", "--out", out, *TINY, "--scenarios", "gs1-ideal,gs2-file",
                    "--probe-scales", "1,2", "--sweep-scenario", "gs1-ideal", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "ptycho-sim-lines-4x" and "same object" in data["split"]
    scenarios = {r["name"]: r for r in data["scenarios"]}
    assert set(scenarios) == {"gs1-ideal", "gs2-file"}
    gs2 = scenarios["gs2-file"]
    assert gs2["gridsize"] == 2 and gs2["probe"] == "aberrated" and gs2["variant"] == "lines4x-gs2-file"
    for row in scenarios.values():
        assert row["ok"] and not row["nan"]["any"] and row["nan"]["patches_nonfinite"] == 0
        # a model trained this briefly may score anything: the table holds real SSIMs, not quality
        assert -1 <= row["amplitude"]["ssim"] <= 1 and -1 <= row["phase"]["ssim"] <= 1
        assert np.isfinite(row["amplitude"]["psnr"]) and row["phase"]["mae"] > 0 and row["train_seconds"] > 0
        # absolute amplitude, no rescale: the right scale within 2× even after 1 epoch on 32 patterns
        # (the untrained network starts at a uniform amplitude 1, ~1.4× these objects' mean)
        assert 0.5 < row["amplitude_mean_ratio"] < 2.0
        assert row["n_train"] == 32 and row["n_test"] == 16 and row["N"] == 32
    sweep = data["probe_scale_sweep"]
    assert sweep["scenario"] == "gs1-ideal" and "scale²" in sweep["quantity"]
    points = {p["probe_scale"]: p for p in sweep["points"]}
    assert points[1.0]["same_run_as"] == "gs1-ideal" and points[1.0]["amplitude"] == scenarios["gs1-ideal"]["amplitude"]
    assert points[2.0]["same_run_as"] is None and points[2.0]["nphotons"] == pytest.approx(4e9)
    for name in ("metrics.md", "metrics.json", "scenarios.png", "probe_scale_sweep.png",
                 "probe_scale_sweep_metrics.png", "study.config.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["gs1-ideal", "gs1-ideal-scale-2", "gs2-file"]
    assert (out / "runs" / "gs2-file" / "eval" / "metrics.json").is_file()
    table = (out / "metrics.md").read_text()
    assert "| gs2-file | 2 | file (aberrated) |" in table and "gs1-ideal-scale-1 (= gs1-ideal)" in table
    assert "## Probe-scale sweep (gs1-ideal)" in table and "![scenarios](scenarios.png)" in table


def test_resolved_config_and_run_folder_replay(tmp_path):
    """``study.config.yaml`` is what ran; each run's ``pipeline.yaml`` is a valid debug-ab arm."""
    from ptycho_sim_lines_4x import SimLines4xConfig, scenario_config

    from ptycho.config.pipeline import PipelineConfig
    from ptycho.workflows.pipeline import PipelinePaths
    from ptycho_cli.api import resolve_config

    cfg = SimLines4xConfig(N=32, object_size=64, n_images=32, epochs=1, scenarios=("gs2-file",), probe_scales=())
    path = tmp_path / "study.config.yaml"
    import yaml

    from ptycho.config.base import to_plain

    path.write_text(yaml.safe_dump({"sim_lines_4x": to_plain(cfg)}))
    assert resolve_config(SimLines4xConfig, "sim_lines_4x", files=[path]) == cfg
    pipeline = scenario_config(cfg, "gs2-file")
    assert PipelinePaths(tmp_path).config.name == "pipeline.yaml"
    assert PipelineConfig.model_validate(to_plain(pipeline)) == pipeline


def test_plan_layers_and_probe_scale():
    from ptycho_sim_lines_4x import SimLines4xConfig, plan, scenario_config

    cfg = SimLines4xConfig(nphotons=1e6, pipeline={"train": {"learning_rate": 5e-4}, "simulate": {"probe": {"kind": "gaussian"}}})
    runs = plan(cfg)
    assert [r.name for r in runs] == ["gs1-ideal", "gs1-file", "gs2-ideal", "gs2-file", "gs2-ideal-scale-0.5",
                                      "gs2-ideal-scale-1", "gs2-ideal-scale-2", "gs2-ideal-scale-4"]
    by_name = {r.name: r.config for r in runs}
    assert by_name["gs2-ideal-scale-1"] == by_name["gs2-ideal"]  # not rerun
    assert by_name["gs2-ideal-scale-4"].simulate.nphotons == pytest.approx(16e6)
    assert by_name["gs1-file"].simulate.probe.kind == "aberrated"  # scenario beats `pipeline`
    assert by_name["gs1-file"].train.learning_rate == 5e-4 and by_name["gs1-file"].simulate.object.kind == "lines"
    assert scenario_config(cfg, "gs2-ideal").simulate.scan.kind == "random"


def test_listed_with_its_command_and_variants():
    result = ptycho("plugins", "--json")
    assert result.exit_code == 0, result.output
    record = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "sim-lines-4x")
    assert record["version"] == "0.1.0" and not record["builtin"]
    assert record["provides"] == {"commands": ["sim-lines-4x"],
                                  "variants": ["lines4x-gs1-ideal", "lines4x-gs1-file", "lines4x-gs2-ideal",
                                               "lines4x-gs2-file"]}
    assert record["hooks"] == ["ptycho_ab_variants", "ptycho_commands"]


def test_variants_resolve_as_debug_ab_arms():
    from ptycho.config.pipeline import DebugABConfig
    from ptycho.debug.variants import ArmSpec
    from ptycho.workflows.debug_ab import resolve_arms
    from ptycho_cli.plugins import get_plugin_manager

    components = get_plugin_manager().components()
    a, b = resolve_arms(DebugABConfig(), ArmSpec("A", "lines4x-gs1-ideal"), ArmSpec("B", "lines4x-gs2-file"), components)
    assert (a.config.simulate.gridsize, a.config.simulate.probe.kind) == (1, "ideal")
    assert (b.config.simulate.gridsize, b.config.simulate.probe.kind) == (2, "aberrated")
    assert b.config.simulate.object.kind == "lines" and b.config.simulate.scan.kind == "random"


def test_disabled_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("PTYCHO_DISABLE_PLUGINS", "sim-lines-4x")
    result = ptycho("sim-lines-4x", "--help")
    assert result.exit_code == 2 and "No such command" in result.output
    listed = json.loads(ptycho("plugins", "--json").stdout)
    assert "sim-lines-4x" not in {p["name"] for p in listed["plugins"]}


@pytest.mark.parametrize(("args", "needle"), [
    (("--scenarios", "gs3-ideal"), "unknown scenario 'gs3-ideal'"),
    (("--probe-scales", "0,1"), "probe_scales"),
    (("--set", "pipeline.train.loss=l2"), "scenario gs1-ideal: train.loss"),
    (("--scenarios", "", "--probe-scales", ""), "nothing to run"),
])
def test_config_errors_are_one_line_exit_2(tmp_path, args, needle):
    result = ptycho("sim-lines-4x", "--out", tmp_path / "s", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not (tmp_path / "s").exists()


def test_failed_runs_are_recorded_and_all_failed_exits_with_their_code(tmp_path, monkeypatch):
    from ptycho.errors import NumericalError
    from ptycho.workflows import pipeline

    def diverge(stage, *args, **kwargs):
        raise NumericalError("training diverged: non-finite loss (NaN) in epoch 1")

    monkeypatch.setattr(pipeline, "run_stage", diverge)
    out = tmp_path / "s"
    result = ptycho("sim-lines-4x", "--out", out, *TINY, "--scenarios", "gs1-file", "--probe-scales", "2", "-q")
    assert result.exit_code == 4, result.output
    data = json.loads((out / "metrics.json").read_text())
    row = data["scenarios"][0]
    assert not row["ok"] and row["failed_stage"] == "simulate" and row["nan"]["any"]
    assert row["amplitude"]["ssim"] is None
    assert "failed at simulate" in (out / "metrics.md").read_text()
    assert (out / "scenarios.png").is_file() and (out / "probe_scale_sweep.png").is_file()


def test_help_does_not_import_tensorflow_nor_click():
    code = ("import sys; from ptycho_cli.app import main\n"
            "assert main(['sim-lines-4x', '--help']) == 0\n"
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
