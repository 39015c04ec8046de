"""The study machinery shared by study plugins (:mod:`ptycho.workflows.study`): the exit code of a
study, the tables, ``metrics.json``/``metrics.md``, the config helpers, and running arms (with the
pipeline's stages replaced by a failure, so that nothing trains)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, field_validator

from ptycho.errors import ConfigError, NumericalError
from ptycho.workflows.study import (
    METRIC_COLUMNS,
    TERMINAL_METRICS,
    TRAIN_SECONDS_COLUMN,
    StudyResult,
    cell,
    markdown_table,
    name_list,
    nan_flag,
    number_list,
    run_arms,
    study_pipeline,
    table_rows,
    write_metrics_json,
    write_metrics_markdown,
    write_study_config,
)


def summary_row(name: str, ok: bool = True, **changes: Any) -> dict[str, Any]:
    """A row as :func:`run_arms` makes it: the plugin's columns, then ``run_summary``'s."""
    nan = {"loss_nonfinite": 0, "nan_recoveries": 0, "patches_nonfinite": 0, "any": False}
    row = {"name": name, "ok": ok, "failed_stage": None if ok else "train",
           "error": None if ok else "NumericalError: NaN", "amplitude": {"ssim": 0.91234, "psnr": 21.0, "mae": 0.05},
           "phase": {"ssim": 0.5, "psnr": None, "mae": 0.1}, "amplitude_mean_ratio": 1.0, "frc50_px": 4.0,
           "nan": nan, "final_loss": 0.25, "train_seconds": 3.0}
    return {**row, **changes}


def result(rows: list[dict[str, Any]], errors: dict[str, BaseException]) -> StudyResult:
    path = Path("out")
    return StudyResult(path, path / "metrics.json", path / "metrics.md", path / "study.config.yaml", {}, rows, 1.0,
                       errors)


# --------------------------------------------------------------------------- StudyResult

def test_exit_code_is_zero_unless_every_arm_failed():
    assert result([], {}).exit_code == 0
    assert result([summary_row("a"), summary_row("b", ok=False)], {"b": NumericalError("NaN")}).exit_code == 0
    failed = [summary_row("a", ok=False), summary_row("b", ok=False)]
    assert result(failed, {"a": NumericalError("NaN"), "b": ConfigError("x")}).exit_code == NumericalError.exit_code
    assert result(failed, {"a": RuntimeError("boom")}).exit_code == 1
    assert result(failed, {}).exit_code == 1


# --------------------------------------------------------------------------- tables

def test_cells():
    assert [cell(None), cell(True), cell(False), cell(0.123456), cell(3), cell("x")] == \
        ["–", "yes", "no", "0.1235", "3", "x"]


def test_nan_flag_names_what_was_not_finite():
    assert nan_flag(summary_row("a")) == "no"
    nan = {"loss_nonfinite": 2, "nan_recoveries": 1, "patches_nonfinite": 3, "any": True}
    assert nan_flag(summary_row("a", ok=False, nan=nan)) == "loss×2, recovered×1, patches, failed at train"
    quiet = {"loss_nonfinite": 0, "nan_recoveries": 0, "patches_nonfinite": None, "any": True}
    assert nan_flag(summary_row("a", nan=quiet)) == "yes"


def test_table_rows_and_markdown():
    columns = (("arm", lambda r: r["name"]), *METRIC_COLUMNS, TRAIN_SECONDS_COLUMN)
    rows = [summary_row("a"), summary_row("b", ok=False)]
    header, body = table_rows(rows, columns)
    assert header[:3] == ["arm", "amp SSIM", "phase SSIM"] and header[-1] == "train (s)"
    assert body[0][:3] == ["a", "0.9123", "0.5"] and body[0][header.index("phase PSNR")] == "–"
    assert body[1][header.index("FRC-0.5 (px)")] == "–"  # a failed arm has no resolution
    assert body[1][header.index("NaN")] == "failed at train"
    header, body = table_rows(rows, columns, ("arm", *TERMINAL_METRICS))
    assert header == ["arm", *TERMINAL_METRICS]
    assert markdown_table(["x", "y"], [["1", "2"], ["3", "4"]]) == "| x | y |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"


# --------------------------------------------------------------------------- files

class Sizes(BaseModel):
    N: int = 32
    object_size: int = 64
    n_images: int = 32
    test_n_images: int | None = None
    epochs: int = 1
    batch_size: int = 16
    n_filters_scale: int = 1
    seed: int = 3
    test_scan_seed: int = 4
    pipeline: dict[str, Any] = {}
    scales: tuple[float, ...] = ()
    names: tuple[str, ...] = ()

    _scales = field_validator("scales", mode="before")(number_list)
    _names = field_validator("names", mode="before")(name_list)


def test_study_config_and_metrics_files(tmp_path):
    out = tmp_path / "study"
    config_path = write_study_config(out, "mine", Sizes())
    assert yaml.safe_load(config_path.read_text())["mine"]["seed"] == 3
    rows = [summary_row("a", frc50_px=math.nan), summary_row("b", ok=False)]
    path = write_metrics_json(out, format="my-study", split="a second scan", config=Sizes(),
                              results={"arms": rows}, figures={"f": out / "f.png"}, seconds=2.0)
    data = json.loads(path.read_text())
    assert list(data) == ["format", "format_version", "split", "config", "arms", "figures", "seconds"]
    assert data["format"] == "my-study" and data["format_version"] == 1 and data["config"]["N"] == 32
    assert data["arms"][0]["frc50_px"] is None and data["figures"] == {"f": str(out / "f.png")}
    text = write_metrics_markdown(out, ["# Mine", ""], rows, 61.4, unit="arm").read_text()
    assert text == ("# Mine\n\n## Failures\n\n- b: stage train: NumericalError: NaN\n\n"
                    "Total 61 s. Each arm's files are in `runs/<arm>/`.\n")
    text = write_metrics_markdown(out, ["# Mine", ""], rows[:1], 1.0).read_text()
    assert "Failures" not in text and text.endswith("Each run's files are in `runs/<run>/`.\n")


def test_comma_lists_and_the_shared_pipeline_settings():
    cfg = Sizes.model_validate({"scales": "0.5, 2", "names": " a, ,b ", "test_n_images": 8,
                                "pipeline": {"train": {"epochs": 7}, "simulate": {"object": {"kind": "dots"}}}})
    assert cfg.scales == (0.5, 2.0) and cfg.names == ("a", "b")
    assert Sizes.model_validate({"scales": 3}).scales == (3.0,) and Sizes.model_validate({"names": ""}).names == ()
    base = study_pipeline(cfg, {"gridsize": 2, "object": {"kind": "lines"}})
    assert base["simulate"] == {"N": 32, "seed": 3, "object": {"size": 64, "kind": "dots"}, "scan": {"n_images": 32},
                                "gridsize": 2}
    assert base["train"] == {"epochs": 7, "batch_size": 16, "seed": 3, "model": {"n_filters_scale": 1}}
    assert base["test_scan_seed"] == 4 and base["test_n_images"] == 8
    assert "test_n_images" not in study_pipeline(Sizes(), {})


# --------------------------------------------------------------------------- running arms

@dataclass(frozen=True)
class Arm:
    name: str
    config: Any


def test_run_arms_records_failures_and_runs_an_equal_config_once(tmp_path, monkeypatch):
    from ptycho.config.pipeline import STAGES, PipelineConfig
    from ptycho.workflows import pipeline

    calls = []

    def diverge(stage, config, *args, **kwargs):
        calls.append(stage)
        raise NumericalError("training diverged: non-finite loss (NaN) in epoch 1")

    monkeypatch.setattr(pipeline, "run_stage", diverge)
    one, two = (PipelineConfig.model_validate({"simulate": {"N": 32, "nphotons": p}}) for p in (1e9, 1e4))
    reports = []
    runs = run_arms([Arm("a", one), Arm("b", two), Arm("a-again", one)], tmp_path,
                    row=lambda arm, run, same_as: {"name": arm.name, "same_as": same_as},
                    progress=lambda done, total, detail: reports.append((done, total, detail)))
    assert calls == ["simulate", "simulate"]  # a-again shares a's run
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a", "b"]
    assert [(r["name"], r["same_as"], r["ok"], r["failed_stage"]) for r in runs.rows] == [
        ("a", None, False, "simulate"), ("b", None, False, "simulate"), ("a-again", "a", False, "simulate")]
    assert runs.rows[0]["nan"]["any"] and runs.runs["a-again"] is runs.runs["a"]
    assert set(runs.errors) == {"a", "b", "a-again"} and runs.comparisons == {}
    total = 2 * len(STAGES)
    assert reports[-1] == (total, total, "b done") and all(t == total for _, t, _ in reports)
    assert "a · simulate failed" in [d for _, _, d in reports]
