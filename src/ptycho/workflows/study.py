"""Machinery shared by study plugins (``ptycho dose``, ``ptycho sim-lines-4x``, …): run a list of
arms, each one whole pipeline run, and write one row per arm to ``metrics.json`` and ``metrics.md``.

An *arm* is any object with a ``name`` (its folder, ``OUT/runs/<name>/``) and a validated
``config`` (:class:`~ptycho.config.pipeline.PipelineConfig`). :func:`run_arms` runs the arms through
:func:`~ptycho.workflows.pipeline.run_pipeline`, records a failing arm and goes on;
:func:`table_rows`, :func:`markdown_table`, :func:`write_metrics_json` and
:func:`write_metrics_markdown` (defined in :mod:`ptycho.workflows.study_tables`, importable from
here too) write the results. What a study compares (its config, arms,
figures and extra columns) stays in the plugin::

    config_path = write_study_config(out_dir, "dose", config)
    runs = run_arms(arms, out_dir, components, row=describe, progress=progress)
    header, body = table_rows(runs.rows, (("arm", lambda r: r["name"]), *METRIC_COLUMNS))

Only the standard library is imported here; the pipeline loads inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptycho.workflows.study_tables import (  # the tables are part of what studies share
    FINAL_LOSS_COLUMN,
    METRIC_COLUMNS,
    TERMINAL_METRICS,
    TRAIN_SECONDS_COLUMN,
    Column,
    cell,
    markdown_table,
    nan_flag,
    table_rows,
    write_metrics_json,
    write_metrics_markdown,
)

__all__ = [
    "FINAL_LOSS_COLUMN", "METRIC_COLUMNS", "STUDY_CONFIG", "TERMINAL_METRICS", "TRAIN_SECONDS_COLUMN", "ArmRuns",
    "Column", "Progress", "StudyResult", "cell", "markdown_table", "name_list", "nan_flag", "number_list",
    "run_arms", "study_pipeline", "table_rows", "write_metrics_json", "write_metrics_markdown", "write_study_config",
]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, detail)``: finished pipeline stages over the whole study."""

STUDY_CONFIG = "study.config.yaml"


@dataclass
class StudyResult:
    """What a study wrote and found.

    Attributes
    ----------
    out_dir : Path
        The study folder.
    metrics_path, markdown_path, config_path : Path
        ``metrics.json``, ``metrics.md`` and ``study.config.yaml``.
    figures : dict of str to Path
        The figures, by name.
    rows : list of dict
        One row per arm, as in ``metrics.json``; each has ``name``, ``ok``, ``failed_stage`` and
        ``error`` (from :func:`~ptycho.workflows.pipeline.run_summary`).
    seconds : float
        Wall time of the whole study.
    errors : dict of str to BaseException
        The exception of each failed arm, by arm name.
    """

    out_dir: Path
    metrics_path: Path
    markdown_path: Path
    config_path: Path
    figures: dict[str, Path]
    rows: list[dict[str, Any]]
    seconds: float
    errors: dict[str, BaseException] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 unless every arm failed: then the exit code of the first failure (1 if it has none)."""
        if self.rows and all(not r["ok"] for r in self.rows):
            first = next(iter(self.errors.values()), None)
            return int(getattr(first, "exit_code", 1))
        return 0


@dataclass
class ArmRuns:
    """What :func:`run_arms` found.

    Attributes
    ----------
    rows : list of dict
        One row per arm, in order: the plugin's columns, then
        :func:`~ptycho.workflows.pipeline.run_summary`.
    runs : dict of str to PipelineRun
        Each arm's run, by arm name (an arm that was not rerun shares the earlier arm's run).
    comparisons : dict of str to Comparison
        The ``evaluate`` stage's comparison of each evaluated arm, by arm name.
    errors : dict of str to BaseException
        The exception of each failed arm, by arm name.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)


def write_study_config(out_dir: Path, section: str, config: Any) -> Path:
    """Create ``out_dir`` and write the resolved study config to ``study.config.yaml`` under
    ``section:`` (a config file that reruns the study)."""
    import yaml

    from ptycho.config.base import to_plain
    from ptycho.io.atomic import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out_dir / STUDY_CONFIG, yaml.safe_dump({section: to_plain(config)}, sort_keys=False))


def run_arms(
    arms: Sequence[Any],
    out_dir: Path,
    components: Any = None,
    *,
    row: Callable[[Any, Any, str | None], dict[str, Any]],
    progress: Progress | None = None,
) -> ArmRuns:
    """Run every arm's pipeline in ``out_dir/runs/<name>/``, in order.

    Parameters
    ----------
    arms : sequence
        Objects with ``name`` and ``config`` (a ``PipelineConfig``).
    out_dir : Path
        The study folder.
    components : ptycho.registry.Components, optional
        Objects, probes, scans and models (default: the built-ins).
    row : callable
        ``row(arm, run, same_as)`` → the arm's own leading columns; ``same_as`` names the earlier
        arm whose run it shares, else ``None``. The run's summary is appended.
    progress : callable, optional
        ``progress(done, total, detail)`` over the pipeline stages of the whole study.

    Returns
    -------
    ArmRuns
        An arm whose config equals an earlier arm's is not rerun: it shares that arm's run. A
        failing arm (e.g. training diverges) is recorded with its stage and message.
    """
    from ptycho.config.pipeline import STAGES
    from ptycho.registry import Components
    from ptycho.workflows.pipeline import run_pipeline, run_summary

    components = components or Components.builtin()
    report = progress or (lambda done, total, detail: None)
    total = len({arm.config for arm in arms}) * len(STAGES)
    state = {"done": 0}
    first: dict[Any, str] = {}  # config → name of the arm that ran it
    out = ArmRuns()
    for arm in arms:
        same_as = first.get(arm.config)
        if same_as is not None:
            run = out.runs[same_as]
        else:
            start = state["done"]
            on_stage, on_progress = _callbacks(arm.name, state, total, report)
            run = run_pipeline(arm.config, Path(out_dir) / "runs" / arm.name, components, on_stage=on_stage,
                               progress=on_progress, raise_errors=False)
            state["done"] = start + len(STAGES)  # stages skipped after a failure count as done
            report(state["done"], total, f"{arm.name} done")
            first[arm.config] = arm.name
        out.runs[arm.name] = run
        if run.error is not None:
            out.errors[arm.name] = run.error[1]
        if "evaluate" in run.results:
            out.comparisons[arm.name] = run.results["evaluate"].comparison
        out.rows.append({**row(arm, run, same_as), **run_summary(run)})
    return out


def _callbacks(name: str, state: dict[str, int], total: int, report: Progress) -> tuple[Any, Any]:
    """``on_stage`` and ``progress`` callbacks of one run for :func:`run_pipeline`, counting finished
    stages of the whole study in ``state["done"]``."""

    def on_stage(stage: str, event: str, seconds: float) -> None:
        if event != "start":
            state["done"] += 1
        report(state["done"], total, f"{name} · {stage}" + (" failed" if event == "failed" else ""))

    def on_progress(stage: str, done: int, n: int, detail: str) -> None:
        report(state["done"], total, f"{name} · {stage} {detail}".rstrip())

    return on_stage, on_progress


# --------------------------------------------------------------------------- config

def number_list(value: Any) -> Any:
    """A ``mode="before"`` field validator: ``"1e9,1e4"`` (a command-line comma list) → ``[1e9, 1e4]``
    and a lone number → a one-element list; anything else is left for the field's type to check."""
    if isinstance(value, str):
        return [float(v) for v in value.split(",") if v.strip()]
    if isinstance(value, (int, float)):
        return [value]
    return value


def name_list(value: Any) -> Any:
    """A ``mode="before"`` field validator: ``"a, b"`` → ``["a", "b"]``; ``""`` → ``[]``; anything else
    is left for the field's type to check."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def study_pipeline(config: Any, simulate: dict[str, Any]) -> dict[str, Any]:
    """Nested pipeline settings shared by every arm of a study.

    Parameters
    ----------
    config : pydantic model
        A study config with ``N``, ``object_size``, ``n_images``, ``test_n_images`` (None: the
        pipeline's default), ``epochs``, ``batch_size``, ``n_filters_scale``, ``seed``,
        ``test_scan_seed`` and ``pipeline`` (nested settings for every arm).
    simulate : dict
        The study's own nested ``simulate`` settings (``{"gridsize": 2}``, …).

    Returns
    -------
    dict
        Sizes and seeds < ``simulate`` < ``config.pipeline``; an arm merges its own settings on top.
    """
    from ptycho.config.merge import deep_merge

    sizes = {"N": config.N, "seed": config.seed, "object": {"size": config.object_size},
             "scan": {"n_images": config.n_images}}
    base: dict[str, Any] = {
        "simulate": deep_merge(sizes, simulate),
        "test_scan_seed": config.test_scan_seed,
        "train": {"epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed,
                  "model": {"n_filters_scale": config.n_filters_scale}},
    }
    if config.test_n_images is not None:
        base["test_n_images"] = config.test_n_images
    return deep_merge(base, config.pipeline)
