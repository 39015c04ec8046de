"""Run the dose study: each (dose, loss) arm is one ptycho pipeline run
(:func:`ptycho.workflows.pipeline.run_pipeline`: simulate → group → train → infer → stitch →
evaluate) in ``OUT/runs/<dose>-<loss>/``; then the metrics table and the figures.

Outputs in ``OUT``::

    study.config.yaml             the resolved study config (``--config`` it to rerun)
    metrics.json, metrics.md      one row per arm: SSIM/PSNR/MAE of amplitude and phase, amplitude
                                  mean ratio, FRC, NaN flags, final loss, train time
    dose_comparison.png           six panels: per dose, a diffraction pattern (log scale) and the
                                  reconstructed amplitude of each loss
    dose_comparison_phase.png     the same with the reconstructed phase
    runs/<arm>/                   each arm's pipeline folder (pipeline.yaml, data, model, eval/)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptycho.workflows.study import (
    FINAL_LOSS_COLUMN,
    METRIC_COLUMNS,
    TERMINAL_METRICS,
    TRAIN_SECONDS_COLUMN,
    Column,
    Progress,
    StudyResult,
    cell,
    markdown_table,
    run_arms,
    write_metrics_json,
    write_metrics_markdown,
    write_study_config,
)
from ptycho.workflows.study import table_rows as study_table_rows
from ptycho_dose.config import SECTION, DoseConfig, dose_label, variant_settings

FORMAT = "ptycho-dose-study"
SPLIT = ("test scan: a second, independent random scan (seed test_scan_seed) of the same object at the "
         "same dose, half as many positions unless test_n_images is set; scored over its stitched area")


@dataclass(frozen=True)
class Arm:
    """One pipeline run of the study."""

    name: str
    dose: float
    dose_label: str
    loss: str
    config: Any  # ptycho.config.pipeline.PipelineConfig


def arm_config(config: DoseConfig, dose: float, loss: str) -> Any:
    """The validated :class:`~ptycho.config.pipeline.PipelineConfig` of one arm: study sizes and
    seeds < ``config.pipeline`` < the arm's dose and loss.

    Raises
    ------
    ConfigError
        Settings the pipeline rejects, named with the arm.
    """
    from pydantic import ValidationError

    from ptycho.config.merge import merge_dotted, validation_message
    from ptycho.config.pipeline import PipelineConfig
    from ptycho.errors import ConfigError

    merged = merge_dotted(config.base_pipeline(), variant_settings(dose, loss))
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{SECTION} arm {dose:g} photons, {loss}: {validation_message(exc)}") from None


def plan(config: DoseConfig) -> list[Arm]:
    """Every (dose, loss) arm, doses in the given order, losses within each."""
    arms = []
    for dose in config.doses:
        label = dose_label(dose, config.doses)
        for loss in config.losses:
            arms.append(Arm(f"{label}-{loss}", dose, label, loss, arm_config(config, dose, loss)))
    return arms


def run_study(config: DoseConfig, out_dir: Path, components: Any = None, *,
              progress: Progress | None = None) -> StudyResult:
    """Run every arm, then write the table and the figures (see the module docstring).

    An arm that fails (e.g. training diverges) is recorded with its stage and message and the study
    goes on. ``progress(done, total, detail)`` counts pipeline stages over the whole study.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    config_path = write_study_config(out_dir, SECTION, config)
    arms = plan(config)
    done = run_arms(arms, out_dir, components, row=_row, progress=progress)
    patterns: dict[float, Any] = {}
    for arm in arms:
        run = done.runs[arm.name]
        if arm.dose not in patterns and "simulate" in run.results:
            patterns[arm.dose] = read_pattern(run.paths["train"], config.pattern_index)
    figures = write_figures(out_dir, config, done.rows, done.comparisons, patterns)
    seconds = time.perf_counter() - t0
    metrics_path, markdown_path = write_tables(out_dir, config, done.rows, figures, seconds)
    return StudyResult(out_dir, metrics_path, markdown_path, config_path, figures, done.rows, seconds, done.errors)


def read_pattern(dataset_path: Path, index: int) -> Any:
    """Pattern ``index`` (clipped to the dataset) of a dataset, counts, ``(N, N)`` float64."""
    import numpy as np

    from ptycho.io.datasets import load_dataset

    with load_dataset(dataset_path) as ds:
        i = min(index, ds.n_patterns - 1)
        return np.asarray(ds.read_patterns(slice(i, i + 1))[0], dtype=np.float64)


def _row(arm: Arm, run: Any, same_as: str | None) -> dict[str, Any]:
    sim = arm.config.simulate
    return {
        "name": arm.name, "variant": f"dose-{arm.name}", "dose": arm.dose_label, "nphotons": arm.dose,
        "loss": arm.loss, "gridsize": sim.gridsize, "N": sim.N, "n_train": sim.scan.n_images,
        "n_test": arm.config.test_images, "run_dir": str(run.paths.dir),
    }


# --------------------------------------------------------------------------- tables

COLUMNS: tuple[Column, ...] = (
    ("arm", lambda r: r["name"]),
    ("photons", lambda r: f"{r['nphotons']:.3g}"),
    ("loss", lambda r: r["loss"]),
    *METRIC_COLUMNS,
    FINAL_LOSS_COLUMN,
    TRAIN_SECONDS_COLUMN,
)
TERMINAL_COLUMNS = ("arm", *TERMINAL_METRICS)
"""The columns the command prints (the files have them all)."""


def table_rows(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Column headers and text cells of the metrics table (``columns``: a subset, by header)."""
    return study_table_rows(rows, COLUMNS, columns)


def pivot(config: DoseConfig, rows: list[dict[str, Any]]) -> str:
    """Dose × loss grid of ``amplitude SSIM / phase SSIM`` (Markdown)."""
    by_key = {(r["nphotons"], r["loss"]): r for r in rows}
    body = []
    for dose in config.doses:
        cells = [f"{dose:.0e} ({dose_label(dose, config.doses)})"]
        for loss in config.losses:
            r = by_key[(dose, loss)]
            cells.append(f"{cell(r['amplitude']['ssim'])} / {cell(r['phase']['ssim'])}" if r["ok"]
                         else f"failed at {r['failed_stage']}")
        body.append(cells)
    return markdown_table(["photons", *[loss.upper() for loss in config.losses]], body)


def write_tables(out_dir: Path, config: DoseConfig, rows: list[dict[str, Any]], figures: dict[str, Path],
                 seconds: float) -> tuple[Path, Path]:
    """``metrics.json`` (every number; NaN as null) and ``metrics.md``."""
    metrics_path = write_metrics_json(out_dir, format=FORMAT, split=SPLIT, config=config, results={"arms": rows},
                                      figures=figures, seconds=seconds)
    parts = [
        "# Dose study: photons × loss",
        "",
        (f"Lines object, N={config.N}, gridsize {config.gridsize}, object {config.object_size} px, "
         f"{config.n_images} training positions, {config.epochs} epochs, seed {config.seed}; Poisson noise at "
         f"each dose. Split — {SPLIT}. Amplitude metrics are absolute (no rescale); SSIM/PSNR/MAE after "
         "sub-pixel registration and global phase-offset removal."),
        "",
        "## Amplitude SSIM / phase SSIM",
        "",
        pivot(config, rows),
        "",
        "## All metrics",
        "",
        markdown_table(*table_rows(rows)),
        "",
    ]
    for key in ("dose_comparison", "dose_comparison_phase"):
        if key in figures:
            parts += [f"![{key}]({figures[key].name})", ""]
    return metrics_path, write_metrics_markdown(out_dir, parts, rows, seconds, unit="arm")


# --------------------------------------------------------------------------- figures

def write_figures(out_dir: Path, config: DoseConfig, rows: list[dict[str, Any]], comparisons: dict[str, Any],
                  patterns: dict[float, Any]) -> dict[str, Path]:
    return {
        "dose_comparison": dose_figure(out_dir / "dose_comparison.png", config, rows, comparisons, patterns,
                                       part="amplitude"),
        "dose_comparison_phase": dose_figure(out_dir / "dose_comparison_phase.png", config, rows, comparisons,
                                             patterns, part="phase"),
    }


def dose_figure(path: Path, config: DoseConfig, rows: list[dict[str, Any]], comparisons: dict[str, Any],
                patterns: dict[float, Any], *, part: str) -> Path:
    """Write :func:`dose_panels` as a PNG at ``path``."""
    from ptycho.figures.common import save_figure

    return save_figure(dose_panels(config, rows, comparisons, patterns, part=part), path, dpi=config.figure_dpi)


def dose_panels(config: DoseConfig, rows: list[dict[str, Any]], comparisons: dict[str, Any],
                patterns: dict[float, Any], *, part: str) -> Any:
    """One row per dose: a training diffraction pattern as ``log10(1 + counts)``, then each loss's
    reconstruction (``part``: amplitude or phase; registered, phase offset removed), or the reason
    it is missing. All reconstructions share one colour range, from the truth's.

    Returns
    -------
    matplotlib.figure.Figure whose first ``len(doses) × (1 + len(losses))`` axes are the panels,
    row by row (colour bars follow).
    """
    import numpy as np

    from ptycho.figures.common import new_figure, show_image

    by_key = {(r["nphotons"], r["loss"]): r for r in rows}
    cols = 1 + len(config.losses)
    fig, axes = new_figure(len(config.doses), cols, size=(3.6 * cols, 3.2 * len(config.doses)))
    values = {}
    for name, cmp in comparisons.items():
        truth = cmp.truth_aligned
        values[name] = np.abs(cmp.recon_aligned) if part == "amplitude" else (
            np.angle(truth) + np.angle(cmp.recon_aligned * np.conj(truth)))
    truths = [np.abs(c.truth_aligned) if part == "amplitude" else np.angle(c.truth_aligned) for c in comparisons.values()]
    vmin = min((float(t.min()) for t in truths), default=0.0)
    vmax = max((float(t.max()) for t in truths), default=1.0)
    cmap, unit = ("gray", "") if part == "amplitude" else ("viridis", " (rad)")
    for i, dose in enumerate(config.doses):
        label = f"{dose:.0e} photons"
        pattern = patterns.get(dose)
        if pattern is None:
            axes[i, 0].axis("off")
            axes[i, 0].set_title(f"{label}: no data", fontsize=9)
        else:
            show_image(fig, axes[i, 0], np.log10(1.0 + pattern),
                       f"{label}: pattern {config.pattern_index}\nlog10(1 + counts), Σ = {pattern.sum():.3g}", cmap="magma")
        for j, loss in enumerate(config.losses, start=1):
            row = by_key[(dose, loss)]
            ax = axes[i, j]
            if row["name"] not in values:
                ax.axis("off")
                reason = f"failed at {row['failed_stage']}: {row['error']}" if row["failed_stage"] else "not evaluated"
                ax.text(0.0, 0.5, f"{label}, {loss.upper()}\n{reason[:150]}", fontsize=8, va="center", wrap=True,
                        transform=ax.transAxes)
                continue
            ssim = row[part]["ssim"]
            show_image(fig, ax, values[row["name"]], f"{label}, {loss.upper()} loss\n{part}{unit}, SSIM {cell(ssim)}",
                       cmap=cmap, vmin=vmin, vmax=vmax)
    return fig
