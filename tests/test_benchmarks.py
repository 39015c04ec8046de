"""The benchmark command (``python -m benchmarks``, benchmarks/README.md): its report machinery in-process,
one real section end to end, and — marked slow — the whole ``--quick`` run in a subprocess.

The full quick run takes a few minutes on 2 CPU cores (about 14 TensorFlow start-ups and a dozen
XLA compilations), hence ``slow``; ``--quick --only sim`` (about 20 s) runs by default.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.report import DEFAULT_SECTIONS, FAIL, INFO, NA, PASS, Section, Target, row, to_json, to_markdown  # noqa: E402
from benchmarks.sizes import FULL, QUICK, override  # noqa: E402

ROW_KEYS = {"metric", "measured", "unit", "config", "target", "status", "reference", "note"}
QUICK_TIMEOUT_S = 900


def run_benchmarks(out: Path, *args: str, timeout: float = QUICK_TIMEOUT_S) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--quiet", "--out", str(out), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def result_files(out: Path) -> tuple[dict, str]:
    [json_path] = sorted(out.glob("*-quick.json"))
    md_path = json_path.with_suffix(".md")
    assert md_path.is_file(), "the Markdown table is written beside the JSON"
    return json.loads(json_path.read_text()), md_path.read_text()


def all_numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from all_numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def check_report(doc: dict, md: str, sections: tuple[str, ...]) -> None:
    assert doc["schema"] == "ptycho-benchmarks/1" and doc["mode"] == "quick"
    machine = doc["machine"]
    assert machine["cpu_model"] and machine["cpus_available"] >= 1 and machine["ram_gb"] > 0
    assert {"python", "tensorflow", "numpy"} <= set(machine["versions"])
    assert list(doc["sections"]) == list(sections)
    for name in sections:
        section = doc["sections"][name]
        assert section["rows"], f"section {name} has no rows"
        for r in section["rows"]:
            assert set(r) == ROW_KEYS
            assert r["status"] in (PASS, FAIL, INFO, NA), f"{name}: {r['metric']} {r['config']}: {r['note']}"
            if r["status"] in (PASS, INFO):
                assert r["measured"] is not None and math.isfinite(r["measured"]), r
        assert f"## {name}:" in md
    assert all(math.isfinite(v) for v in all_numbers(doc)), "the JSON holds only finite numbers"
    assert "| metric | config | target | measured |" in md and "## Machine" in md


def quick_section(out: Path, name: str) -> tuple[dict, str]:
    """``--quick --only NAME`` run and checked; its section's JSON and the Markdown."""
    result = run_benchmarks(out, "--only", name)
    assert result.returncode == 0, result.stderr[-3000:]
    doc, md = result_files(out)
    check_report(doc, md, (name,))
    return doc["sections"][name], md


# -- in-process: targets, rows, rendering, options -----------------------------------------

def test_targets_decide_pass_and_fail():
    assert Target(">=", 2000).check(2100) == PASS and Target(">=", 2000).check(1999) == FAIL
    assert Target("<", 1000).check(999) == PASS and Target("<", 1000).check(1000) == FAIL
    within = Target("within", 1.0, tol=0.05, relative=True)
    assert within.check(1.049) == PASS and within.check(0.94) == FAIL
    assert Target(">=", 0.9).check(float("nan")) == FAIL and Target(">=", 0.9).check(None) == FAIL
    assert within.text() == "1 ± 5%" and Target(">=", 2000).text() == "≥ 2,000"


def test_rows_without_a_value_or_target():
    assert row("baseline", 5.0).status == INFO
    missing = row("not measured", None)
    assert missing.status == NA and missing.measured is None
    failed = row("NaN value", float("nan"), target=Target(">=", 0.9))
    assert failed.status == FAIL and failed.measured is None and "nan" in failed.note


def test_json_and_markdown_say_plainly_when_a_target_is_missed():
    sec = Section("sim", "simulation")
    sec.add(row("throughput", 150.0, unit="patterns/s", target=Target(">=", 2000), reference="~130–210"),
            row("peak RSS", 700.0, unit="MB", target=Target("<", 1000)))
    sec.error("simulate 10⁵", RuntimeError("boom\nlast line"))
    meta = {"date": "2026-01-01", "hostname": "h", "mode": "quick", "command": "python -m benchmarks",
            "machine": {"versions": {}}, "git": {}}
    doc = json.loads(to_json(meta, [sec]))
    assert doc["summary"]["FAIL"] == 1 and doc["summary"]["pass"] == 1 and doc["summary"]["error"] == 1
    md = to_markdown(meta, [sec])
    assert "❌ **FAIL**" in md and "⚠️ **error**" in md and "last line" in md and "~130–210" in md


def test_merged_sections_say_which_run_measured_them():
    meta = {"date": "2026-01-01", "hostname": "h", "mode": "full", "command": "python -m benchmarks --only sweep",
            "started": "2026-01-01T12:00:00", "machine": {"versions": {}}, "git": {"commit": "bbb", "dirty": False}}
    old, new = Section("sim", "simulation"), Section("sweep", "robustness")
    old.raw["run"] = {"started": "2026-01-01T09:00:00", "command": "python -m benchmarks --only sim",
                      "commit": "aaa", "dirty": True}
    new.raw["run"] = {"started": meta["started"], "command": meta["command"], "commit": "bbb", "dirty": False}
    md = to_markdown(meta, [old, new])
    assert "measured in the run started 2026-01-01T09:00:00 (`python -m benchmarks --only sim`, commit `aaa + uncommitted changes`)" in md
    assert "measured in the run started 2026-01-01T12:00:00" in md and "merged in from earlier runs" in md
    assert "merged in from earlier runs" not in to_markdown(meta, [new])  # one run: nothing merged


def test_sizes_and_overrides():
    assert FULL.sim_sizes == (10_000, 100_000) and FULL.sim_N == 64 and FULL.quality_epochs == 20
    assert QUICK.sim_N == 32 and QUICK.quality_epochs == 2
    gridsizes = {c[0] for c in FULL.sweep_cases}
    doses = {c[1] for c in FULL.sweep_cases}
    assert gridsizes == {1, 2, 3} and doses == {1e4, 1e5, 1e6, 1e7, 1e8, 1e9}
    assert {c[2] for c in FULL.sweep_cases} == {"ideal", "gaussian", "aberrated"}
    changed = override(QUICK, ["quality_epochs=3", "sim_sizes=[100, 200]"])
    assert changed.quality_epochs == 3 and changed.sim_sizes == (100, 200)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        override(QUICK, ["no_such_size=1"])


def test_bad_section_is_a_usage_error(tmp_path):
    result = run_benchmarks(tmp_path, "--only", "sim,nonsense", timeout=60)
    assert result.returncode == 2 and "nonsense" in result.stderr


# -- subprocess: real measurements ---------------------------------------------------------

def test_quick_sim_section_end_to_end(tmp_path):
    result = run_benchmarks(tmp_path, "--only", "sim")
    assert result.returncode == 0, result.stderr[-3000:]
    doc, md = result_files(tmp_path)
    check_report(doc, md, ("sim",))
    metrics = {r["metric"] for r in doc["sections"]["sim"]["rows"]}
    assert {"NumPy per-pattern baseline", "ptycho simulate throughput", "speed-up over NumPy baseline",
            "peak RSS of simulate"} <= metrics


@pytest.mark.slow
def test_quick_mode_runs_every_section(tmp_path):
    result = run_benchmarks(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    doc, md = result_files(tmp_path)
    check_report(doc, md, DEFAULT_SECTIONS)
    sweep = doc["sections"]["sweep"]
    assert sweep["grid"]["columns"] == ["gridsize 1", "gridsize 2", "gridsize 3"]
    quality = {r["metric"] for r in doc["sections"]["quality"]["rows"]}
    assert {"PINN phase SSIM", "rPIE phase SSIM", "PINN amplitude mean ratio (absolute, no rescale)"} <= quality


# -- the regime map ---------------------------------------------------------------------------

def test_regime_cells_are_jittered_rasters_with_a_separate_half_step_test_scan():
    import numpy as np

    from benchmarks.sections.regimes import JITTER_FRACTION, STEP_FRACTION, cell_configs, probe_diameter_px
    from ptycho.config.simulate import SimulateConfig
    from ptycho.physics.scan import grid_scan

    N, size = 64, 384
    D = probe_diameter_px(N)
    assert 0.6 * N < D < 0.72 * N
    counts = {}
    for overlap in ("dense", "sparse", "free"):
        train, test = (SimulateConfig.model_validate(c) for c in cell_configs(N, size, 1e4, overlap, "lines", D))
        step = STEP_FRACTION[overlap] * D
        assert train.scan.step_px == test.scan.step_px == step and train.scan.jitter_px == JITTER_FRACTION * step
        tx, ty = grid_scan((size, size), N, train.scan.model_copy(update={"jitter_px": 0.0}), np.random.default_rng(0))
        sx, sy = grid_scan((size, size), N, test.scan.model_copy(update={"jitter_px": 0.0}), np.random.default_rng(0))
        offset = (sx.min() - tx.min()) % step
        assert abs(offset - step / 2) <= 1.0  # the test raster sits about half a step off the training one
        counts[overlap] = len(sx)
    assert counts["free"] >= 25 and counts["sparse"] > counts["free"] and counts["dense"] > 500


def test_regime_arms_pick_the_oracle_and_the_budget():
    from benchmarks.sections.regimes import arm_results, summarise

    trajectory = [{"iteration": i, "seconds": 0.5 * i, "phase_ssim": s, "amplitude_ssim": 0.9,
                   "frc50_cycles_per_px": None, "amplitude_mean_ratio": 1.0} for i, s in enumerate([0.6, 0.7, 0.5, 0.4], 1)]
    arm = {"trajectory": trajectory, "setup_s": 2.0}
    best = summarise(arm)
    assert (best["iteration"], best["wall_s"], best["last_phase_ssim"]) == (2, 3.0, 0.4)
    assert summarise(arm, 3)["phase_ssim"] == 0.5 and summarise(arm, 99)["iteration"] == 4
    arms = arm_results({"rpie": arm, "ml": {"error": "NumericalError: x", "trajectory": []},
                        "ptychi": {"skipped": "pty-chi not importable"}},
                       {"metrics": {**trajectory[0]}, "reconstruct_s": 1.5, "train_s": 30.0}, budget=3)
    assert arms["rPIE best"]["iteration"] == 2 and arms["rPIE budget"]["iteration"] == 3
    assert arms["ML best"] == "NumericalError: x" and arms["pty-chi best"] == "pty-chi not importable"
    assert arms["PINN"]["wall_s"] == 1.5


@pytest.mark.slow
def test_quick_regime_map_runs_end_to_end(tmp_path):
    section, _ = quick_section(tmp_path, "regimes")
    assert section["grid"]["columns"] == ["rPIE best", "rPIE budget", "ML best", "pty-chi best", "PINN"]
    assert len(section["grid"]["rows"]) == 4  # 1 dose × 2 overlaps × 2 objects (gold beside the repository)
    measured = {(r["metric"], r["config"]) for r in section["rows"] if r["measured"] is not None}
    for arm in ("rPIE best", "ML best", "PINN"):
        assert (f"{arm} phase SSIM", "lines, free, 1e4") in measured
    assert (tmp_path / next(tmp_path.glob("*-regimes.png")).name).stat().st_size > 10_000


def test_regime_arms_report_their_flop_rate_against_the_matmul_rate():
    from benchmarks.sections.regimes import arm_results, cell_rows
    from benchmarks.report import Section

    scores = {"phase_ssim": 0.8, "amplitude_ssim": 0.9, "frc50_cycles_per_px": 0.1, "amplitude_mean_ratio": 1.0}
    trajectory = [{"iteration": i, "seconds": 0.5 * i, **scores, "phase_ssim": 0.7 + 0.1 * i} for i in (1, 2)]
    rpie = {"trajectory": trajectory, "setup_s": 1.0, "flops_per_iteration": {"total": 2e9}}
    pinn = {"metrics": scores, "reconstruct_s": 3.0, "train_s": 9.0, "stitch_s": 1.0, "network_patterns_per_second": 100.0,
            "infer_stages": {"load": 0.5, "prepare": 0.1, "estimate": 0.4, "network": 0.8, "io": 0.2},
            "flops": {"infer": {"total": 1e8}}}
    arms = arm_results({"rpie": rpie, "ml": {"trajectory": []}, "ptychi": {"skipped": "no"}}, pinn, budget=2)
    assert arms["rPIE best"]["achieved_flops"] == pytest.approx(4e9)  # 2 iterations × 2 GFLOP in 1 s
    assert arms["PINN"]["achieved_flops"] == pytest.approx(1e10) and arms["PINN"]["stages"]["stitch"] == 1.0
    sec = Section("regimes", "t")
    cell_rows(sec, "lines, dense, 1e4", arms, {"tensorflow": {"gflops": 40.0}, "numpy": {"gflops": 8.0}})
    notes = {r.metric: r.note for r in sec.rows}
    assert "iterations 4 GFLOP/s = 50.0% of NumPy's matmul" in notes["rPIE best phase SSIM"]
    assert "network 10 GFLOP/s = 25.0% of TensorFlow's matmul" in notes["PINN phase SSIM"]
    assert "set-up 1.00 s + iterations 1.00 s" in notes["rPIE best phase SSIM"]
    assert "pre-pass (global estimate) 0.40 s" in notes["PINN phase SSIM"] and "stitch 1.00 s" in notes["PINN phase SSIM"]


# -- the settings comparison ------------------------------------------------------------------

def _variant(jit, batch, threads, rate, network=0.0):
    return {"jit": jit, "batch": batch, "threads": threads, "patterns_per_second": rate,
            "network_patterns_per_second": network}


def test_settings_name_the_fastest_variant_and_the_defaults_share():
    from benchmarks.sections.settings import fastest_rows, grid_rows

    results = [_variant(True, 16, 0, 200.0, 900.0), _variant(False, 16, 0, 250.0, 700.0),
               _variant(False, 64, 1, 400.0, 800.0), _variant(True, 64, 1, 300.0, 1000.0)]
    (best, share), sentence = fastest_rows("train", 1, results)
    assert best.measured == 400.0 and best.note == "XLA off, batch 64, 1 thread"
    assert share.measured == pytest.approx(0.5) and "XLA on, batch 16, TensorFlow's threads" in share.note
    assert sentence.startswith("fastest for train at gridsize 1: XLA off, batch 64, 1 thread (400 patterns/s")
    rows, sentence = fastest_rows("infer", 2, results, "network_patterns_per_second", "network only")
    assert [r.note for r in rows] == ["XLA on, batch 64, 1 thread"]  # infer's default (batch 64, TF threads) not run
    assert sentence == "fastest for infer (network only) at gridsize 2: XLA on, batch 64, 1 thread (1000 patterns/s)"
    grid = grid_rows("train", 1, results, [8, 16, 64])
    assert grid["train gs1, XLA off, 1 thread"] == ["—", "—", "400"]
    assert grid["train gs1, XLA on, TensorFlow's threads"] == ["—", "200", "—"]


def test_settings_refuse_to_set_threads_after_tensorflow_started(monkeypatch):
    from benchmarks.sections.settings import use_threads

    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.raises(RuntimeError, match="already imported"):
        use_threads(2)
    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    use_threads(0)  # TensorFlow's own choice: nothing set
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    use_threads(2)
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == os.environ["TF_NUM_INTEROP_THREADS"] == "2"


@pytest.mark.slow
def test_quick_settings_section_runs_end_to_end(tmp_path):
    section, md = quick_section(tmp_path, "settings")
    assert len(section["raw"]["train_gs1"]) == len(section["raw"]["infer_gs1"]) == 2 * 2 * 2  # XLA × batch × threads
    assert any(n.startswith("fastest for train at gridsize 1:") for n in section["notes"])
    assert any(n.startswith("fastest for infer (whole infer()) at gridsize 1:") for n in section["notes"])
    assert "fastest for train at gridsize 1:" in md
    threads = {r["threads"]: r["os_threads"] for r in section["raw"]["infer_gs1"]}
    assert threads[1] < threads[0]  # the thread setting took effect


# -- the realistic scenario ---------------------------------------------------------------------

def test_realistic_ptychi_arm_without_ptychi_says_na_with_the_reason():
    from benchmarks.sections.realistic import ARMS, quality_rows

    sec = Section("realistic", "t")
    results = {arm: {"error": "boom"} for arm in ARMS}
    results["e"] = {"skipped": "pty-chi not importable (ModuleNotFoundError: No module named 'torch')"}
    quality_rows(sec, results)
    rows = [r for r in sec.rows if r.config.startswith("(e)")]
    assert [r.metric for r in rows] == ["phase SSIM", "position RMS error"]
    assert all(r.status == NA and r.measured is None and "No module named 'torch'" in r.note for r in rows)
    assert sum(r.status != NA for r in sec.rows) == len(ARMS) - 1  # the other arms' errors, one row each


@pytest.mark.slow
def test_quick_realistic_section_end_to_end(tmp_path):
    """``--quick --only realistic``: every arm runs through the ptycho commands, each target has a
    met/missed row with its number, and the two refinement figures are written."""
    from benchmarks.sections.realistic import ARMS

    result = run_benchmarks(tmp_path, "--only", "realistic", timeout=2 * QUICK_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    doc, md = result_files(tmp_path)
    check_report(doc, md, ("realistic",))
    rows = doc["sections"]["realistic"]["rows"]
    for arm, label in ARMS.items():
        [phase] = [r for r in rows if r["metric"] == "phase SSIM" and r["config"] == f"({arm}) {label}"]
        if arm == "e" and phase["status"] == NA:  # pty-chi is optional: n/a with the reason
            assert "pty-chi not importable" in phase["note"]
            continue
        assert -1 <= phase["measured"] <= 1
    targets = {r["metric"]: r for r in rows if r["target"] != "—"}
    for metric in ("PINN phase SSIM − iterative phase SSIM", "PINN phase SSIM − its input estimate's",
                   "PINN refined probe overlap"):
        assert targets[metric]["status"] in (PASS, FAIL) and targets[metric]["measured"] is not None
    assert targets["PINN position RMS error"]["status"] in (PASS, FAIL, NA)
    [iterative_positions] = [r for r in rows if r["metric"] == "position RMS error" and r["config"].startswith("(a)")]
    assert 0 <= iterative_positions["measured"] < 3
    for name in ("iterative", "pinn"):
        assert (tmp_path / f"{doc['date']}-{doc['hostname']}-quick-realistic-{name}.png").stat().st_size > 10_000
