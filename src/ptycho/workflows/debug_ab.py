"""``debug-ab``: run the pipeline for two variants side by side and say where they first diverge
(docs/debug-ab.md).

Both arms start from the same base config and seeds and differ only in their variant settings
(:mod:`ptycho.debug.variants`). Stage by stage (``simulate → group → train → infer → stitch →
evaluate``, up to ``DebugABConfig.stages``) arm A runs, then arm B, each in its own folder
(``OUT/A``, ``OUT/B``); then the stage's taps (:mod:`ptycho.debug.taps`) are compared within
tolerance and ``report.json`` / ``report.md`` are rewritten (atomically), so an interrupted run
still leaves the report of the stages done. The side-by-side figure is drawn at the end.

An arm whose stage raises is recorded as failed at that stage (message in the report, traceback
in ``OUT/<arm>/error.txt``); a failure of one arm only is a divergence. No stage runs after a
failure, nor after the first divergence with ``stop_on_divergence``.

Arms that differ by design (a non-empty config diff) diverge from the first stage their settings
feed, as expected; when the evaluate stage ran, each arm is run again with other seeds
(``debug_ab.replicates``) and the report says whether the final scores differ beyond that
run-to-run spread (:mod:`ptycho.debug.outcome`).
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ptycho.config.base import to_plain
from ptycho.config.pipeline import STAGES, DebugABConfig
from ptycho.debug.outcome import design_stage, judge_outcome, replicate_settings
from ptycho.debug.taps import compare_taps
from ptycho.debug.variants import Arm, ArmSpec, base_settings, config_diff, resolve_arm
from ptycho.errors import ConfigError
from ptycho.io.atomic import write_text_atomic
from ptycho.registry import Components
from ptycho.workflows.debug_ab_report import build_report, write_figure, write_report
from ptycho.workflows.debug_ab_runs import ArmRun, Event, OnEvent, StageResult
from ptycho.workflows.pipeline import run_stage


@dataclass(frozen=True)
class DebugABResult:
    out_dir: Path
    report_path: Path
    markdown_path: Path
    figure_path: Path | None
    report: dict[str, Any]
    stages: list[StageResult]
    first_divergent_stage: str | None
    arms: tuple[Arm, Arm]
    seconds: float
    runs: tuple[ArmRun, ArmRun]

    @property
    def both_failed(self) -> StageResult | None:
        """The stage at which both arms failed (a pipeline problem, not an A/B difference), if any."""
        return next((r for r in self.stages if r.status == "failed"), None)

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the failure when both arms failed at the same stage."""
        return self.runs[0].error[2] if self.both_failed is not None and self.runs[0].error else 0


def resolve_arms(config: DebugABConfig, a: ArmSpec, b: ArmSpec, components: Components,
                 base: dict[str, Any] | None = None) -> tuple[Arm, Arm]:
    """Both arms' validated pipeline configs (ConfigError names the arm at fault)."""
    start = base_settings(config.pipeline_defaults(), base)
    return resolve_arm(a, start, components), resolve_arm(b, start, components)


def debug_ab(
    config: DebugABConfig,
    a: ArmSpec,
    b: ArmSpec,
    out_dir: Path,
    components: Components | None = None,
    *,
    base: dict[str, Any] | None = None,
    on_event: OnEvent | None = None,
) -> DebugABResult:
    """Run both arms up to ``config.last_stage`` and write the report into ``out_dir``.

    ``base``: nested pipeline settings shared by both arms (config files, overrides, flags),
    above the debug-ab sizing and below the variants.

    Raises
    ------
    ConfigError
        Unknown variant or an invalid arm config (before anything runs).
    """
    t0 = time.perf_counter()
    components = components or Components.builtin()
    if a.label == b.label:
        raise ConfigError("debug-ab: the two arms need different labels")
    arms = resolve_arms(config, a, b, components, base)
    out_dir = Path(out_dir)
    runs = [ArmRun(arm, out_dir / arm.label) for arm in arms]
    for run in runs:
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "error.txt").unlink(missing_ok=True)  # from an earlier run into the same folder
        # the flat pipeline config, as run_pipeline writes it: `ptycho debug-ab OUT/A/pipeline.yaml …`
        # replays the arm (its variant and settings are in report.json)
        write_text_atomic(run.paths.config, yaml.safe_dump(to_plain(run.arm.config), sort_keys=False))
    diff = config_diff(arms[0].config, arms[1].config)
    emit = on_event or (lambda event: None)
    results: list[StageResult] = []

    design = design_stage(diff, STAGES)
    outcome: dict[str, Any] = {"judged": None, "reason": ""}

    def report(figure: Path | None) -> dict[str, Any]:
        data = build_report(config, runs, diff, results, out_dir, figure, time.perf_counter() - t0,
                            design=design, outcome=outcome)
        write_report(out_dir, data)
        return data

    for stage in config.stages:
        for run in runs:
            _run_stage(stage, run, components, emit)
        results.append(_compare_stage(stage, runs, config))
        report(None)
        if any(r.error for r in runs) or (config.stop_on_divergence and results[-1].status != "same"):
            break
    if design is not None:
        outcome.update(_judge_outcome(config, runs, arms, out_dir, components, emit, base))
    figure = None
    if config.figure:
        try:
            figure = write_figure(out_dir / "figure.png", runs)
        except Exception as exc:  # noqa: BLE001 - a drawing problem must not lose the report
            warnings.warn(f"debug-ab: figure not written ({type(exc).__name__}: {exc})", stacklevel=2)
    data = report(figure)
    first = data["first_divergent_stage"]
    return DebugABResult(out_dir, out_dir / "report.json", out_dir / "report.md", figure, data, results, first,
                         arms, time.perf_counter() - t0, (runs[0], runs[1]))


def _judge_outcome(config: DebugABConfig, runs: list[ArmRun], arms: tuple[Arm, Arm], out_dir: Path,
                   components: Components, emit: OnEvent, base: dict[str, Any] | None) -> dict[str, Any]:
    """Rerun each arm ``config.replicates`` times with other seeds (``OUT/A-seed2`` …) and judge
    whether the arms' scores differ beyond that run-to-run spread (:mod:`ptycho.debug.outcome`)."""
    if "evaluate" not in config.stages:
        return {"reason": "evaluate not run"}
    if any(r.error for r in runs) or any("evaluate" not in r.taps for r in runs):
        return {"reason": "an arm did not reach evaluate"}
    if config.replicates == 0:
        return {"reason": "no replicate runs (`debug_ab.replicates` = 0)"}
    start = base_settings(config.pipeline_defaults(), base)
    scores: dict[str, list[dict[str, Any]]] = {run.arm.label: [run.taps["evaluate"]] for run in runs}
    folders: dict[str, list[str]] = {run.arm.label: [] for run in runs}
    for k in range(1, config.replicates + 1):
        for arm in arms:
            spec = arm.spec
            label = f"{spec.label}-seed{k + 1}"
            overrides = {**spec.overrides, **replicate_settings(arm.config, k)}
            twin = resolve_arm(ArmSpec(label, spec.name, overrides, spec.extra, arm.variants), start, components)
            rerun = ArmRun(twin, out_dir / label)
            rerun.dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(rerun.paths.config, yaml.safe_dump(to_plain(twin.config), sort_keys=False))
            for stage in STAGES:
                _run_stage(stage, rerun, components, emit)
                if rerun.error:
                    return {"reason": f"replicate {label} failed at {rerun.error[0]}: {rerun.error[1]}"}
            scores[spec.label].append(rerun.taps["evaluate"])
            folders[spec.label].append(label)
    return {"judged": judge_outcome(scores["A"], scores["B"]), "replicates": folders, "reason": ""}


def _compare_stage(stage: str, runs: list[ArmRun], config: DebugABConfig) -> StageResult:
    ra, rb = runs
    errors = {r.arm.label: r.error[1] for r in runs if r.error and r.error[0] == stage}
    taps = compare_taps(stage, ra.taps.get(stage, {}), rb.taps.get(stage, {}), config.tolerances)
    if len(errors) == 2:
        status = "failed"
    elif errors or any(t.diverged for t in taps):
        status = "diverged"
    else:
        status = "same"
    seconds = {r.arm.label: r.seconds.get(stage, 0.0) for r in runs}
    return StageResult(stage, status, taps, errors, seconds)


def _run_stage(stage: str, run: ArmRun, components: Components, emit: OnEvent) -> None:
    title = run.arm.title

    def progress(done: int, total: int, detail: str = "") -> None:
        emit(Event(run.arm.label, title, stage, "progress", done, total, detail))

    emit(Event(run.arm.label, title, stage, "start"))
    t0 = time.perf_counter()
    try:
        result = run_stage(stage, run.arm.config, run.paths, components, progress=progress)
        run.taps[stage] = STAGE_TAPS[stage](run, result, components)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing arm is a finding, recorded in the report
        run.seconds[stage] = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}"
        run.error = (stage, message, int(getattr(exc, "exit_code", 1)))
        write_text_atomic(run.dir / "error.txt", f"stage {stage}: {message}\n\n{traceback.format_exc()}")
        emit(Event(run.arm.label, title, stage, "failed", detail=message, seconds=run.seconds[stage]))
        return
    run.seconds[stage] = time.perf_counter() - t0
    emit(Event(run.arm.label, title, stage, "done", seconds=run.seconds[stage]))


# --------------------------------------------------------------------------- stages
# Each stage runs through ``ptycho.workflows.pipeline.run_stage`` (the same code as a plain
# pipeline run); these functions read the stage's outputs back into taps and figure material.

def _simulate_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import simulate_taps
    from ptycho.io.datasets import load_dataset

    with load_dataset(run.path("train")) as train, load_dataset(run.path("test")) as test:
        taps, mean_pattern = simulate_taps(train, test)
        run.artefacts.update(truth=train.object, probe=train.probe, x=train.x, y=train.y, mean_pattern=mean_pattern)
    return taps


def _group_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import group_taps

    return group_taps(result.groups, result.gridsize)


def _train_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import train_taps
    from ptycho.models.bundle import load_bundle

    run.artefacts["history"] = result.history
    run.artefacts["loss_name"] = run.arm.config.train.loss
    return train_taps(result.history, load_bundle(run.path("model"), components).model)


def _infer_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import infer_taps

    return infer_taps(run.path("patches"))


def _stitch_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import stitch_taps
    from ptycho.io.objects import read_object

    image = read_object(run.path("object"))
    run.artefacts["stitched"] = image
    return stitch_taps(image)


def _evaluate_taps(run: ArmRun, result: Any, components: Components) -> dict[str, Any]:
    from ptycho.debug.recorders import evaluate_taps

    run.artefacts["comparison"] = result.comparison
    return evaluate_taps(result.metrics)


STAGE_TAPS: dict[str, Callable[[ArmRun, Any, Components], dict[str, Any]]] = {
    "simulate": _simulate_taps, "group": _group_taps, "train": _train_taps, "infer": _infer_taps,
    "stitch": _stitch_taps, "evaluate": _evaluate_taps,
}
