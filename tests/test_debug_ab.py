"""``ptycho debug-ab``: variants and arms, taps and tolerances, localisation of the first divergent
stage, the report files, plugin variants, and the packaged aberrated probe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ptycho.config.pipeline import STAGES, DebugABConfig, PipelineConfig
from ptycho.debug.taps import EXACT, TAPS, Tolerance, compare_taps, tolerance_for
from ptycho.debug.variants import ArmSpec, config_diff
from ptycho.errors import ConfigError
from ptycho.registry import Components, VariantSpec
from ptycho.workflows.debug_ab import debug_ab, resolve_arms
from ptycho_cli import hookimpl

TINY = dict(N=32, object_size=64, n_images=48, epochs=1)
NO_XLA = {"train": {"jit": False}, "infer": {"jit": False}}  # at this size XLA compilation costs more than it saves
TINY_FLAGS = ["--n-images", "48", "--epochs", "1", "--set", "debug_ab.object_size=64",
              "--set", "train.jit=false", "--set", "infer.jit=false"]


def strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def stage(report: dict, name: str) -> dict:
    return next(s for s in report["stages"] if s["stage"] == name)


def tap(report: dict, stage_name: str, tap_name: str) -> dict:
    return next(t for t in stage(report, stage_name)["taps"] if t["name"] == tap_name)


# --------------------------------------------------------------------------- configs and arms

def test_stages_run_up_to_the_latest_named():
    assert DebugABConfig(stages="simulate").stages == ("simulate",)
    assert DebugABConfig(stages="train,simulate").stages == ("simulate", "group", "train")
    assert DebugABConfig().stages == STAGES
    with pytest.raises(ValueError, match="unknown stage 'fit'"):
        DebugABConfig(stages="fit")


def test_test_scan_is_the_same_object_scanned_anew_with_half_the_positions():
    cfg = PipelineConfig.model_validate({"simulate": {"scan": {"n_images": 100}}, "test_scan_seed": 7})
    test = cfg.test_simulate_config()
    assert test.scan.n_images == 50 and test.scan.seed == 7
    assert test.seed == cfg.simulate.seed and test.object == cfg.simulate.object and test.probe == cfg.simulate.probe
    with pytest.raises(ValueError, match="would repeat the training scan"):
        PipelineConfig.model_validate({"simulate": {"scan": {"seed": 1}}, "test_scan_seed": 1})


def test_arm_layering_variant_over_base_and_overrides_over_variant():
    config = DebugABConfig(**TINY)
    base = {"simulate": {"nphotons": 1e6}, "train": {"loss": "mae"}}
    a, b = resolve_arms(config, ArmSpec("A", "grid"), ArmSpec("B", "nongrid+nll", {"simulate.nphotons": 1e5}),
                        Components.builtin(), base)
    assert a.config.simulate.N == 32 and a.config.simulate.object.size == 64 and a.config.train.epochs == 1
    assert a.config.simulate.scan.kind == "grid" and a.config.train.loss == "mae" and a.config.simulate.nphotons == 1e6
    assert b.config.simulate.scan.kind == "random" and b.config.train.loss == "nll" and b.config.simulate.nphotons == 1e5
    assert b.variants == ("nongrid", "nll")
    diff = {row["key"]: (row["a"], row["b"]) for row in config_diff(a.config, b.config)}
    assert diff == {"simulate.scan.kind": ("grid", "random"), "train.loss": ("mae", "nll"),
                    "simulate.nphotons": (1e6, 1e5)}


def test_unknown_variant_and_bad_keys_are_config_errors_naming_the_arm():
    components = Components.builtin()
    with pytest.raises(ConfigError, match=r"unknown variant 'gs3'; available: base, dose-high, .*probe-ideal"):
        resolve_arms(DebugABConfig(), ArmSpec("A", "grid"), ArmSpec("B", "gs3"), components)
    with pytest.raises(ConfigError, match=r"arm B \(base\): train.loss: Input should be 'nll' or 'mae'"):
        resolve_arms(DebugABConfig(), ArmSpec("A", "base"), ArmSpec("B", "base", {"train.loss": "l2"}), components)
    with pytest.raises(ConfigError, match=r"arm A \(base\): simulate.nphoton: Extra inputs"):
        resolve_arms(DebugABConfig(), ArmSpec("A", "base", {"simulate.nphoton": 1}), ArmSpec("B", "base"), components)


def test_tolerances_compare_within_rtol_atol_and_can_be_overridden():
    tol = Tolerance(rtol=1e-3, atol=1e-6)
    assert tol.agree(1.0, 1.0005) and not tol.agree(1.0, 1.002)
    assert tol.agree(math.nan, math.nan) and not tol.agree(1.0, math.nan)
    assert tol.agree(None, None) and not tol.agree(None, 0.0)
    assert EXACT.agree(True, True) and not EXACT.agree(True, False)
    assert tolerance_for("train", "loss_final") == TAPS["train"]["loss_final"][0]
    overrides = DebugABConfig.model_validate({"tolerances": {"train": {"*": {"rtol": 0.5}, "epochs": {"atol": 2}}}}).tolerances
    assert tolerance_for("train", "loss_final", overrides) == Tolerance(0.5, TAPS["train"]["loss_final"][0].atol)
    assert tolerance_for("train", "epochs", overrides) == Tolerance(0.5, 2.0)
    rows = compare_taps("train", {"loss_final": 1.0, "epochs": 3}, {"loss_final": 1.4, "epochs": 5}, overrides)
    assert [(r.name, r.diverged) for r in rows] == [("epochs", False), ("loss_final", False)]
    rows = compare_taps("train", {"loss_final": 1.0}, {"loss_final": 1.4})
    assert rows[0].diverged and rows[0].rel_diff == pytest.approx(0.4 / 1.4)


# --------------------------------------------------------------------------- localisation

def test_dose_high_vs_dose_low_diverges_first_at_simulate_in_the_counts(tmp_path):
    result = debug_ab(DebugABConfig(**TINY, stages="simulate", figure=False), ArmSpec("A", "dose-high"),
                      ArmSpec("B", "dose-low"), tmp_path, Components.builtin(), base=NO_XLA)
    assert result.first_divergent_stage == "simulate"
    report = strict_json(tmp_path / "report.json")
    diverged = set(stage(report, "simulate")["diverged_taps"])
    assert {"counts_mean", "counts_total", "probe_energy"} <= diverged
    assert tap(report, "simulate", "counts_mean")["a"] > 1e4 * tap(report, "simulate", "counts_mean")["b"]
    assert not {"overlap_mean", "n_patterns", "object_amplitude_mean"} & diverged  # geometry and truth agree
    assert report["config_diff"] == [{"key": "simulate.nphotons", "a": 1e9, "b": 1e4}]
    assert report["stages_run"] == report["stages_requested"] == ["simulate"] and report["stages_not_run"] == []


def test_loss_change_agrees_on_the_data_and_diverges_first_at_train(tmp_path):
    result = debug_ab(DebugABConfig(**TINY, stages="train", figure=False), ArmSpec("A", "nll"), ArmSpec("B", "mae"),
                      tmp_path, Components.builtin(), base=NO_XLA)
    report = result.report
    assert [s["status"] for s in report["stages"]] == ["same", "same", "diverged"]
    assert result.first_divergent_stage == "train"
    assert {"loss_first", "loss_final"} <= set(stage(report, "train")["diverged_taps"])
    for name in ("photon_scale", "input_scale", "nan_recoveries", "weights_nonfinite"):  # same data, same scale
        assert not tap(report, "train", name)["diverged"], name
    assert (tmp_path / "A" / "model" / "manifest.json").is_file() and (tmp_path / "B" / "model" / "manifest.json").is_file()


def test_a_failing_arm_is_a_divergence_at_its_stage_and_nothing_runs_after(invoke, tmp_path):
    out = tmp_path / "rep"
    result = invoke("debug-ab", "base", "base", "--b-set", "train.n_groups=1000", "--stages", "train", "--out", out,
                    "--json", *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["first_divergent_stage"] == "group"
    assert "n_groups (1000) exceeds" in stage(report, "group")["errors"]["B"]
    assert report["stages_run"] == ["simulate", "group"] and report["stages_not_run"] == ["train"]
    assert report["arms"]["B"]["error"]["stage"] == "group" and (out / "B" / "error.txt").is_file()
    assert "arm B failed" in report["verdict"]


# --------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def tiny_full_run(tmp_path_factory):
    """`ptycho debug-ab nongrid nongrid` through every stage at tiny size (1 epoch, 48 positions)."""
    from typer.testing import CliRunner

    from ptycho_cli.app import make_app

    out = tmp_path_factory.mktemp("debug-ab") / "report"
    result = CliRunner().invoke(make_app(env={}), ["debug-ab", "nongrid", "nongrid", "--out", str(out), "--json",
                                                   *TINY_FLAGS], catch_exceptions=False)
    return result, out


def test_identical_variants_agree_at_every_stage(tiny_full_run):
    result, out = tiny_full_run
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stages_run"] == list(STAGES)
    assert [s["status"] for s in report["stages"]] == ["same"] * len(STAGES)
    assert report["first_divergent_stage"] is None and report["config_diff"] == []
    assert "agree within tolerance at every stage run" in report["verdict"]
    assert tap(report, "evaluate", "amplitude_ssim")["a"] == tap(report, "evaluate", "amplitude_ssim")["b"]


def test_an_arms_pipeline_yaml_replays_that_arm(tiny_full_run, invoke, tmp_path):
    _, out = tiny_full_run
    replay = invoke("debug-ab", out / "A" / "pipeline.yaml", "nongrid", "--stages", "simulate", "--out", tmp_path / "r",
                    "--json", *TINY_FLAGS)
    assert replay.exit_code == 0, replay.output
    report = json.loads(replay.stdout)
    assert report["config_diff"] == [] and report["first_divergent_stage"] is None


def test_a_tiny_full_run_writes_every_report_file(tiny_full_run):
    _, out = tiny_full_run
    report = strict_json(out / "report.json")
    assert report["format"] == "ptycho-debug-ab" and report["files"]["figure"] == "figure.png"
    assert (out / "figure.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    for heading in ("## Config diff", "## Stages", "### simulate", "### evaluate", "![A and B side by side]"):
        assert heading in md
    for arm in ("A", "B"):
        for name in ("train.h5", "test.h5", "model/manifest.json", "patches.h5", "object.npz", "eval/metrics.json"):
            assert (out / arm / name).exists(), f"{arm}/{name}"
        pipeline = yaml.safe_load((out / arm / "pipeline.yaml").read_text())
        assert pipeline["train"]["epochs"] == 1 and pipeline["simulate"]["scan"]["n_images"] == 48
        PipelineConfig.model_validate(pipeline)  # flat, so it replays as an arm file
    assert not list(out.rglob(".*.tmp-*"))  # atomic writes leave no temporary files
    for stage_name in STAGES:
        assert {t["name"] for t in stage(report, stage_name)["taps"]} == set(TAPS[stage_name])


def test_grid_vs_nongrid_data_check_through_the_cli(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("debug-ab", "grid", "nongrid", "--stages", "simulate", *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    out = tmp_path / "debug-ab-grid-vs-nongrid"
    for name in ("report.json", "report.md", "figure.png"):
        assert (out / name).is_file(), name
    report = strict_json(out / "report.json")
    assert report["first_divergent_stage"] == "simulate"
    assert {"overlap_mean", "nn_distance_mean_px"} <= set(stage(report, "simulate")["diverged_taps"])
    assert "simulate.scan.kind" in result.stdout and "first divergence at simulate" in result.stdout


def test_unknown_variant_exits_2_listing_the_available_ones(invoke, tmp_path):
    result = invoke("debug-ab", "grid", "spiral", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "unknown variant 'spiral'" in result.output
    for name in ("grid", "nongrid", "gs1", "gs2", "nll", "mae", "probe-ideal", "probe-file", "dose-high", "dose-low"):
        assert name in result.output
    assert not (tmp_path / "r").exists()
    result = invoke("debug-ab", "base", "base", "--a-set", "simulat.nphotons=1")
    assert result.exit_code == 2 and "unknown key 'simulat.nphotons'" in result.output


class NarrowProbeVariants:
    __name__ = "narrow-probe-variants"

    @hookimpl
    def ptycho_ab_variants(self):
        return [VariantSpec("narrow-probe", {"simulate.probe.diameter_frac": 0.3}, "a probe of 0.3·N")]


def test_a_plugin_variant_is_usable_by_name(invoke, tmp_path):
    result = invoke("debug-ab", "probe-ideal", "narrow-probe", "--stages", "group", "--out", tmp_path, "--json",
                    *TINY_FLAGS, plugins=[NarrowProbeVariants()])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["arms"]["B"]["settings"] == {"simulate.probe.diameter_frac": 0.3}
    assert report["first_divergent_stage"] == "simulate"
    assert "probe_diameter_px" in stage(report, "simulate")["diverged_taps"]
    assert not tap(report, "simulate", "probe_energy")["diverged"]  # same photons, smaller probe
    assert stage(report, "group")["status"] == "same"


def test_flags_beat_set_and_debug_ab_settings_come_from_set(invoke, tmp_path):
    result = invoke("debug-ab", "base", "base", "--stages", "simulate", "--out", tmp_path, "--no-figure", "--quiet",
                    "--set", "train.epochs=7", "--set", "simulate.nphotons=1e5", "--set", "debug_ab.N=32",
                    "--set", "debug_ab.object_size=64", "--set", "debug_ab.n_images=40", "--epochs", "2")
    assert result.exit_code == 0, result.output
    pipeline = yaml.safe_load((tmp_path / "A" / "pipeline.yaml").read_text())
    assert pipeline["train"]["epochs"] == 2 and pipeline["simulate"]["nphotons"] == 1e5
    assert pipeline["simulate"]["scan"]["n_images"] == 40 and pipeline["simulate"]["object"]["size"] == 64
    assert not (tmp_path / "figure.png").exists()


def test_config_files_for_both_arms_and_a_variant_file_for_one(invoke, tmp_path):
    shared = tmp_path / "study.yaml"
    shared.write_text(yaml.safe_dump({"simulate": {"nphotons": 1e6, "object": {"kind": "siemens"}},
                                      "export": {"name": "ignored"}, "debug_ab": {"stages": "simulate"}}))
    arm = tmp_path / "mae-arm.toml"
    arm.write_text('[train]\nloss = "mae"\n')
    result = invoke("debug-ab", "base", arm, "--config", shared, "--out", tmp_path / "r", "--json", "--no-figure",
                    *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stages_run"] == ["simulate"] and report["first_divergent_stage"] is None
    assert report["arms"]["B"]["settings"] == {"train.loss": "mae"} and report["arms"]["B"]["variants"] == []
    assert report["config_diff"] == [{"key": "train.loss", "a": "nll", "b": "mae"}]
    pipeline = yaml.safe_load((tmp_path / "r" / "B" / "pipeline.yaml").read_text())
    assert pipeline["simulate"]["object"]["kind"] == "siemens" and pipeline["simulate"]["nphotons"] == 1e6
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulation: {N: 32}\n")
    result = invoke("debug-ab", "base", "base", "--config", bad)
    assert result.exit_code == 2 and "unknown section 'simulation'" in result.output


def test_both_arms_failing_alike_is_a_pipeline_error_with_its_exit_code(invoke, tmp_path):
    result = invoke("debug-ab", "grid", "nongrid", "--set", "train.n_groups=1000", "--stages", "group",
                    "--out", tmp_path, "--no-figure", *TINY_FLAGS)
    assert result.exit_code == 2, result.output
    report = strict_json(tmp_path / "report.json")
    assert stage(report, "group")["status"] == "failed" and report["first_divergent_stage"] == "simulate"
    assert report["verdict"].startswith("first divergence at simulate")  # grid vs nongrid is still reported
    assert "; then both arms failed at group: ConfigError: n_groups (1000) exceeds" in report["verdict"]


def test_builtin_variants_are_registered_through_the_hook(invoke):
    data = json.loads(invoke("plugins", "--json").stdout)
    plugin = next(p for p in data["plugins"] if p["name"] == "builtin.debug_ab")
    assert {"grid", "nongrid", "dose-high", "dose-low", "probe-file"} <= set(plugin["provides"]["variants"])
    assert data["broken"] == []


# --------------------------------------------------------------------------- packaged probe

def test_packaged_probe_resamples_to_any_N_keeping_its_shape_and_centre():
    from ptycho.physics.packaged_probe import aberrated_probe, load_packaged_probe, resample_probe
    from ptycho.physics.probe import effective_diameter_px

    stored = load_packaged_probe("aberrated")
    assert stored.shape == (64, 64) and stored.dtype == np.complex64
    np.testing.assert_array_equal(resample_probe(stored, 64), stored)
    for N in (32, 128):
        probe = aberrated_probe(N)
        assert probe.shape == (N, N) and probe.dtype == np.complex64
        assert effective_diameter_px(probe) / N == pytest.approx(effective_diameter_px(stored) / 64, rel=0.01)
        # a round trip through a finer grid is exact (zero-padding the spectrum, then cropping it back)
    back = resample_probe(resample_probe(stored, 128), 64)
    np.testing.assert_allclose(back / np.abs(back).max(), stored / np.abs(stored).max(), atol=1e-5)
    # the centre of a symmetric field stays on the window centre (N−1)/2
    yy, xx = np.mgrid[0:64, 0:64]
    gauss = np.exp(-((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 50.0)
    small = np.abs(resample_probe(gauss, 32)) ** 2
    cy = (small * np.arange(32)[:, None]).sum() / small.sum()
    assert cy == pytest.approx(15.5, abs=1e-4)


def test_simulate_with_the_aberrated_probe_is_deterministic(invoke, tmp_path):
    from ptycho.io.datasets import load_dataset
    from ptycho.physics.packaged_probe import aberrated_probe
    from ptycho.physics.probe import normalise_probe

    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        result = invoke("simulate", "--probe", "aberrated", "--N", "32", "--size", "64", "--n-images", "16",
                        "--nphotons", "1e6", "--no-preview", "--out", path, "--quiet")
        assert result.exit_code == 0, result.output
    with load_dataset(paths[0]) as a, load_dataset(paths[1]) as b:
        np.testing.assert_array_equal(a.read_patterns(), b.read_patterns())
        np.testing.assert_array_equal(a.probe, b.probe)
        np.testing.assert_allclose(a.probe, normalise_probe(aberrated_probe(32), 1e6), rtol=1e-6, atol=1e-6)
        assert np.sum(np.abs(a.probe.astype(np.complex128)) ** 2) == pytest.approx(1e6, rel=1e-5)
