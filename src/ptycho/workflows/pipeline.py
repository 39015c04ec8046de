"""One whole pipeline run for a :class:`~ptycho.config.pipeline.PipelineConfig`, stage by stage,
into one folder: ``simulate`` (training scan and a separate test scan of the same object) →
``group`` → ``train`` → ``infer`` → ``stitch`` → ``evaluate``.

:func:`run_stage` runs one stage and returns that workflow's own result object;
:func:`run_pipeline` runs the stages in order, times them and keeps going only while they
succeed. ``debug-ab`` runs each of its arms this way (and taps the results); study plugins use
:func:`run_pipeline` to run one scenario. Files in the folder (:class:`PipelinePaths`)::

    pipeline.yaml     the resolved PipelineConfig, flat (also a valid ``debug-ab`` arm file)
    train.h5 test.h5  training and test datasets (+ .config.yaml, train.preview.png)
    model/            the trained bundle (loss.png, history, config.json, …)
    patches.h5        per-group object patches of the test scan
    object.npz        the stitched test object (+ .amplitude.png, .phase.png)
    eval/             metrics.json, comparison.png, frc.png
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ptycho.config.base import to_plain
from ptycho.config.pipeline import STAGES, PipelineConfig
from ptycho.errors import ConfigError
from ptycho.io.atomic import write_text_atomic
from ptycho.registry import Components

StageProgress = Callable[..., None]
"""``progress(done, total, detail="")`` — how far the running stage is."""

NAN_MESSAGE = re.compile(r"\bnan\b|non-finite|\binf\b", re.IGNORECASE)
"""Words in a failure message that mark it as a numerical (NaN/Inf) failure for :func:`run_summary`."""

PIPELINE_FILES: dict[str, str] = {
    "train": "train.h5", "test": "test.h5", "model": "model", "patches": "patches.h5",
    "object": "object.npz", "eval": "eval",
}


@dataclass(frozen=True)
class PipelinePaths:
    """Where each stage of a run in folder ``dir`` reads and writes (names in ``PIPELINE_FILES``)."""

    dir: Path

    def __getitem__(self, name: str) -> Path:
        return Path(self.dir) / PIPELINE_FILES[name]

    @property
    def config(self) -> Path:
        return Path(self.dir) / "pipeline.yaml"


@dataclass(frozen=True)
class GroupResult:
    """The neighbour groups training will use (stage ``group``)."""

    groups: Any  # ptycho.data.grouping.Groups
    gridsize: int


@dataclass
class PipelineRun:
    """What :func:`run_pipeline` did: each finished stage's result and seconds, and the failure.

    ``results[stage]`` is the workflow's own result: ``simulate`` → ``(train, test)``
    :class:`~ptycho.workflows.simulate.SimulationResult`; ``group`` → :class:`GroupResult`;
    ``train`` → :class:`~ptycho.workflows.train.TrainResult`; ``infer`` →
    :class:`~ptycho.workflows.infer.InferResult`; ``stitch`` →
    :class:`~ptycho.workflows.stitch.StitchResult`; ``evaluate`` →
    :class:`~ptycho.workflows.evaluate.EvaluateResult`. ``error`` is ``(stage, exception)`` of the
    stage that raised, if any (no later stage ran).
    """

    config: PipelineConfig
    paths: PipelinePaths
    results: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    error: tuple[str, BaseException] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failed_stage(self) -> str | None:
        return None if self.error is None else self.error[0]


def run_stage(
    stage: str,
    config: PipelineConfig,
    paths: PipelinePaths,
    components: Components | None = None,
    *,
    progress: StageProgress | None = None,
    figures: bool = True,
) -> Any:
    """Run one stage of ``config`` in ``paths.dir`` (earlier stages' files must exist).

    Returns the stage's workflow result (see :class:`PipelineRun`). ``figures=False`` skips the
    dataset preview and the stitched amplitude/phase PNGs (``eval/`` always has its figures).

    Raises
    ------
    ConfigError
        Unknown stage; otherwise whatever the stage's workflow raises.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown pipeline stage '{stage}'; use one of {', '.join(STAGES)}")
    components = components or Components.builtin()
    report = progress or (lambda done, total, detail="": None)
    Path(paths.dir).mkdir(parents=True, exist_ok=True)
    if stage == "simulate":
        from ptycho.workflows.simulate import simulate

        train = simulate(config.simulate, paths["train"], components, preview=figures,
                         progress=lambda d, t: report(d, t, "training scan"))
        test = simulate(config.test_simulate_config(), paths["test"], components, preview=False,
                        progress=lambda d, t: report(d, t, "test scan"))
        return train, test
    if stage == "group":
        from ptycho.data.grouping import make_groups
        from ptycho.io.datasets import load_dataset
        from ptycho.workflows.train import resolve_model_config

        cfg = config.train
        with load_dataset(paths["train"]) as dataset:
            gridsize = int(resolve_model_config(cfg, dataset).gridsize)
            groups = make_groups(dataset.x, dataset.y, gridsize, n_groups=cfg.n_groups, neighbors=cfg.neighbors,
                                 oversample=cfg.oversample, seed=cfg.seed)
        return GroupResult(groups, gridsize)
    if stage == "train":
        from ptycho.workflows.train import train

        epochs = config.train.epochs

        def on_step(step: Any) -> None:
            report(step.step, step.steps, f"epoch {step.epoch + 1}/{epochs} loss {step.loss:.4g}")

        return train(config.train, paths["train"], paths["model"], components, on_step=on_step)
    if stage == "infer":
        from ptycho.workflows.infer import infer

        return infer(config.infer, paths["model"], paths["test"], paths["patches"], components, progress=report)
    if stage == "stitch":
        from ptycho.workflows.stitch import stitch

        return stitch(config.stitch, paths["patches"], paths["object"], figures=figures, progress=report)
    from ptycho.workflows.evaluate import evaluate

    return evaluate(config.evaluate, paths["object"], paths["test"], paths["eval"])


def run_pipeline(
    config: PipelineConfig,
    out_dir: Path,
    components: Components | None = None,
    *,
    stages: Iterable[str] = STAGES,
    progress: Callable[[str, int, int, str], None] | None = None,
    on_stage: Callable[[str, str, float], None] | None = None,
    figures: bool = True,
    raise_errors: bool = True,
) -> PipelineRun:
    """Run ``stages`` (in pipeline order, default all) of ``config`` into ``out_dir``.

    Writes ``out_dir/pipeline.yaml`` first (flat pipeline sections: ``ptycho debug-ab
    OUT/pipeline.yaml OTHER`` replays the run as an arm). ``progress(stage, done, total, detail)`` reports
    within a stage; ``on_stage(stage, event, seconds)`` is called with ``"start"``, ``"done"`` or
    ``"failed"``. With ``raise_errors=False`` a failing stage is recorded in
    :attr:`PipelineRun.error` and the run returns; otherwise the exception propagates.
    ``KeyboardInterrupt`` always propagates.
    """
    wanted = set(stages)
    unknown = wanted - set(STAGES)
    if unknown:
        raise ConfigError(f"unknown pipeline stage '{min(unknown)}'; use one of {', '.join(STAGES)}")
    paths = PipelinePaths(Path(out_dir))
    paths.dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths.config, yaml.safe_dump(to_plain(config), sort_keys=False))
    run = PipelineRun(config, paths)
    components = components or Components.builtin()
    for stage in (s for s in STAGES if s in wanted):
        if on_stage:
            on_stage(stage, "start", 0.0)
        t0 = time.perf_counter()
        stage_progress = None if progress is None else (
            lambda done, total, detail="", _s=stage: progress(_s, done, total, detail))
        try:
            run.results[stage] = run_stage(stage, config, paths, components, progress=stage_progress, figures=figures)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, or re-raised with raise_errors
            run.seconds[stage] = time.perf_counter() - t0
            run.error = (stage, exc)
            if on_stage:
                on_stage(stage, "failed", run.seconds[stage])
            if raise_errors:
                raise
            return run
        run.seconds[stage] = time.perf_counter() - t0
        if on_stage:
            on_stage(stage, "done", run.seconds[stage])
    return run


def _number(value: Any) -> float | None:
    """A finite float, or None (missing, NaN or ±inf)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _stored_history(paths: PipelinePaths) -> dict[str, Any]:
    """The training history a failed (e.g. diverged) train stage left in its bundle, if any."""
    import json

    from ptycho.models.bundle import bundle_file

    path = bundle_file(paths["model"], "history.json")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def run_summary(run: PipelineRun) -> dict[str, Any]:
    """The headline numbers of a run as JSON-ready values (``None`` where a stage did not run).

    ``amplitude`` / ``phase``: ``ssim``, ``psnr``, ``mae`` after registration (amplitude
    absolute, not rescaled); ``amplitude_rescaled_ssim`` after the mean-ratio rescale;
    ``amplitude_mean_ratio`` (reconstruction / truth); ``frc50_px`` / ``frc1_7_px`` (resolution
    of the complex object, px; None if not crossed); ``train_seconds`` (wall time of the train
    stage, compilation included); ``nan``: non-finite epoch losses, NaN recoveries of the
    training guard, non-finite inferred patch pixels, and ``any`` — also true when a stage
    failed with a numerical error or a NaN message.
    """
    from ptycho.errors import NumericalError

    metrics: dict[str, Any] = {}
    if "evaluate" in run.results:
        metrics = run.results["evaluate"].metrics
    train = run.results.get("train")
    history = train.history if train is not None else _stored_history(run.paths)
    loss = list(history.get("loss", []))
    loss_nonfinite = sum(1 for v in loss if _number(v) is None)
    patches_nonfinite = None
    if "infer" in run.results or run.failed_stage == "stitch":
        from ptycho.debug.recorders import infer_taps

        try:
            patches_nonfinite = int(infer_taps(run.paths["patches"])["nonfinite"])
        except (OSError, KeyError):  # a patches file the failed stage could not read either
            patches_nonfinite = None
    error = None if run.error is None else f"{type(run.error[1]).__name__}: {run.error[1]}"
    numerical_failure = run.error is not None and (
        isinstance(run.error[1], NumericalError) or NAN_MESSAGE.search(str(run.error[1])) is not None)
    nan = {
        "loss_nonfinite": loss_nonfinite,
        "nan_recoveries": int(history.get("nan_recoveries", 0) or 0),
        "patches_nonfinite": patches_nonfinite,
    }
    nan["any"] = bool(loss_nonfinite or nan["nan_recoveries"] or patches_nonfinite or numerical_failure)

    def image(part: str) -> dict[str, float | None]:
        values = metrics.get(part) or {}
        return {k: _number(values.get(k)) for k in ("ssim", "psnr", "mae")}

    frc = metrics.get("frc") or {}
    return {
        "ok": run.ok,
        "failed_stage": run.failed_stage,
        "error": error,
        "amplitude": image("amplitude"),
        "phase": image("phase"),
        "amplitude_rescaled_ssim": _number((metrics.get("amplitude_rescaled") or {}).get("ssim")),
        "amplitude_mean_ratio": _number((metrics.get("amplitude_mean") or {}).get("ratio")),
        "frc50_px": _number(frc.get("frc50_px")),
        "frc1_7_px": _number(frc.get("frc1_7_px")),
        "nan": nan,
        "epochs": len(loss),
        "final_loss": _number(loss[-1]) if loss else None,
        "train_seconds": _number(run.seconds.get("train")),
        "seconds": {k: round(v, 3) for k, v in run.seconds.items()},
        "total_seconds": round(sum(run.seconds.values()), 3),
    }
