"""``ptycho.workflows.pipeline``: the simulate → … → evaluate runner behind the main job, debug-ab
and the study plugins."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from ptycho.config.pipeline import STAGES, PipelineConfig
from ptycho.errors import ConfigError, DataError
from ptycho.workflows.pipeline import PipelinePaths, run_pipeline, run_stage, run_summary


def tiny(**train) -> PipelineConfig:
    return PipelineConfig.model_validate({
        "simulate": {"N": 32, "object": {"size": 64}, "scan": {"n_images": 48}},
        "train": {"epochs": 1, "jit": False, "model": {"n_filters_scale": 1}, **train},
        "infer": {"jit": False},
    })


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    events = []
    run = run_pipeline(tiny(), out, figures=False, on_stage=lambda stage, event, s: events.append((stage, event)))
    return run, events


def test_every_stage_runs_in_order_and_leaves_its_files(full_run):
    run, events = full_run
    assert run.ok and list(run.results) == list(STAGES) and set(run.seconds) == set(STAGES)
    assert events == [(s, e) for s in STAGES for e in ("start", "done")]
    for name in ("train", "test", "patches", "object"):
        assert run.paths[name].is_file(), name
    assert (run.paths["model"] / "config.json").is_file() and (run.paths["eval"] / "metrics.json").is_file()
    train, test = run.results["simulate"]
    assert test.n_patterns == 24 and train.n_patterns == 48  # the test scan has half the positions


def test_pipeline_yaml_replays_the_same_config(full_run):
    run, _ = full_run
    replay = PipelineConfig.model_validate(yaml.safe_load(run.paths.config.read_text()))
    assert replay == run.config


def test_summary_reports_the_evaluated_numbers(full_run):
    run, _ = full_run
    summary = run_summary(run)
    metrics = json.loads((run.paths["eval"] / "metrics.json").read_text())
    assert summary["ok"] and summary["failed_stage"] is None and summary["error"] is None
    assert summary["phase"]["ssim"] == pytest.approx(metrics["phase"]["ssim"])
    assert summary["amplitude_mean_ratio"] == pytest.approx(metrics["amplitude_mean"]["ratio"])
    assert summary["epochs"] == 1 and math.isfinite(summary["final_loss"])
    assert summary["nan"] == {"loss_nonfinite": 0, "nan_recoveries": 0, "patches_nonfinite": 0, "any": False}
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN sneaks into a summary


def test_a_failing_stage_is_recorded_and_nothing_after_it_runs(tmp_path):
    config = tiny(model={"N": 64})  # the data are N=32
    run = run_pipeline(config, tmp_path, stages=["simulate", "group", "train"], figures=False, raise_errors=False)
    assert not run.ok and run.failed_stage == "group" and list(run.results) == ["simulate"]
    assert isinstance(run.error[1], DataError) and "64" in str(run.error[1]) and "32" in str(run.error[1])
    summary = run_summary(run)
    assert summary["failed_stage"] == "group" and summary["phase"]["ssim"] is None and not summary["nan"]["any"]
    with pytest.raises(DataError):
        run_pipeline(config, tmp_path / "again", stages=["simulate", "group"], figures=False)


def test_unknown_stages_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown pipeline stage 'fit'"):
        run_pipeline(tiny(), tmp_path, stages=["simulate", "fit"])
    with pytest.raises(ConfigError, match="unknown pipeline stage 'fit'"):
        run_stage("fit", tiny(), PipelinePaths(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before anything was written
