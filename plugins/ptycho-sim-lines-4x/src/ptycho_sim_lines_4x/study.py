"""Run the SIM-LINES-4X study: every scenario and sweep point is one ptycho pipeline run
(:func:`ptycho.workflows.pipeline.run_pipeline`: simulate → group → train → infer → stitch →
evaluate) in ``OUT/runs/<name>/``; then the metrics table and the figure grids.

Outputs in ``OUT``::

    study.config.yaml           the resolved study config (``--config`` it to rerun)
    metrics.json, metrics.md    one row per run: SSIM/PSNR/MAE of amplitude and phase, amplitude
                                mean ratio, FRC, NaN flags, train time
    scenarios.png               per scenario: truth, reconstruction and error, amplitude and phase
    probe_scale_sweep.png       the same per probe scale
    probe_scale_sweep_metrics.png   SSIM and amplitude mean ratio against the probe scale
    runs/<name>/                each run's pipeline folder (pipeline.yaml, data, model, eval/)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptycho.workflows.study import (
    METRIC_COLUMNS,
    TERMINAL_METRICS,
    TRAIN_SECONDS_COLUMN,
    Column,
    Progress,
    StudyResult,
    cell,
    run_arms,
    write_metrics_json,
    write_metrics_markdown,
    write_study_config,
)
from ptycho.workflows.study import markdown_table as markdown_grid
from ptycho.workflows.study import table_rows as study_table_rows
from ptycho_sim_lines_4x.config import SECTION, SimLines4xConfig, variant_settings

FORMAT = "ptycho-sim-lines-4x"
SPLIT = ("test scan: a second, independent random scan (seed test_scan_seed) of the same object, "
         "half as many positions unless test_n_images is set; scored over its stitched area")
SWEEP_QUANTITY = ("probe amplitude × scale, i.e. nphotons × scale² (ptycho's gauge: Σ|P|² = photons "
                  "per pattern)")


@dataclass(frozen=True)
class PlannedRun:
    """One pipeline run of the study: a scenario, at a probe scale."""

    name: str
    scenario: str
    probe_scale: float
    config: Any  # ptycho.config.pipeline.PipelineConfig
    sweep: bool


def scenario_config(config: SimLines4xConfig, scenario: str, probe_scale: float = 1.0) -> Any:
    """The validated :class:`~ptycho.config.pipeline.PipelineConfig` of one run.

    Layering (as ``debug-ab`` does): study sizes and seeds < ``config.pipeline`` < the scenario's
    variant settings; the probe scale multiplies the photon count by ``probe_scale²``.

    Raises
    ------
    ConfigError
        Settings the pipeline rejects, named with the scenario.
    """
    from pydantic import ValidationError

    from ptycho.config.merge import merge_dotted, validation_message
    from ptycho.config.pipeline import PipelineConfig
    from ptycho.errors import ConfigError

    merged = merge_dotted(config.base_pipeline(), variant_settings(scenario))
    if probe_scale != 1.0:
        photons = float(merged["simulate"].get("nphotons", config.nphotons))
        merged = merge_dotted(merged, {"simulate.nphotons": photons * probe_scale**2})
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{SECTION} scenario {scenario}: {validation_message(exc)}") from None


def plan(config: SimLines4xConfig) -> list[PlannedRun]:
    """The scenario runs, then the sweep points (a point equal to a scenario run is not rerun)."""
    runs = [PlannedRun(name, name, 1.0, scenario_config(config, name), False) for name in config.scenarios]
    for scale in config.probe_scales:
        name = f"{config.sweep_scenario}-scale-{scale:g}"
        runs.append(PlannedRun(name, config.sweep_scenario, scale,
                               scenario_config(config, config.sweep_scenario, scale), True))
    return runs


def run_study(
    config: SimLines4xConfig,
    out_dir: Path,
    components: Any = None,
    *,
    progress: Progress | None = None,
) -> StudyResult:
    """Run every planned run, then write the table and the figures (see the module docstring).

    A run that fails (e.g. training diverges) is recorded with its stage and message and the
    study goes on; a sweep point equal to a scenario run reuses that run. ``progress(done, total,
    detail)`` counts pipeline stages over the whole study.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    config_path = write_study_config(out_dir, SECTION, config)
    done = run_arms(plan(config), out_dir, components, row=_row, progress=progress)
    figures = write_figures(out_dir, done.rows, done.comparisons, dpi=config.figure_dpi)
    seconds = time.perf_counter() - t0
    metrics_path, markdown_path = write_tables(out_dir, config, done.rows, figures, seconds)
    return StudyResult(out_dir, metrics_path, markdown_path, config_path, figures, done.rows, seconds, done.errors)


def _row(item: PlannedRun, run: Any, same_as: str | None) -> dict[str, Any]:
    sim = item.config.simulate
    return {
        "name": item.name,
        "scenario": item.scenario,
        "variant": f"lines4x-{item.scenario}",
        "sweep": item.sweep,
        "gridsize": sim.gridsize,
        "probe": sim.probe.kind,
        "probe_scale": item.probe_scale,
        "nphotons": sim.nphotons,
        "N": sim.N,
        "n_train": sim.scan.n_images,
        "n_test": item.config.test_images,
        "run_dir": str(run.paths.dir),
        "same_run_as": same_as,
    }


# --------------------------------------------------------------------------- tables

COLUMNS: tuple[Column, ...] = (
    ("run", lambda r: r["name"] + (f" (= {r['same_run_as']})" if r["same_run_as"] else "")),
    ("gs", lambda r: r["gridsize"]),
    ("probe", lambda r: "file (aberrated)" if r["probe"] == "aberrated" else r["probe"]),
    ("photons", lambda r: f"{r['nphotons']:.3g}"),
    *METRIC_COLUMNS,
    TRAIN_SECONDS_COLUMN,
)
TERMINAL_COLUMNS = ("run", *TERMINAL_METRICS)
"""The columns the command prints (the files have them all)."""


def table_rows(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Column headers and text cells of the metrics table (``columns``: a subset, by header)."""
    return study_table_rows(rows, COLUMNS, columns)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The metrics table of ``rows`` in Markdown."""
    return markdown_grid(*table_rows(rows))


def write_tables(out_dir: Path, config: SimLines4xConfig, rows: list[dict[str, Any]],
                 figures: dict[str, Path], seconds: float) -> tuple[Path, Path]:
    """``metrics.json`` (every number; NaN as null) and ``metrics.md``."""
    scenario_rows = [r for r in rows if not r["sweep"]]
    sweep_rows = [r for r in rows if r["sweep"]]
    results = {
        "scenarios": scenario_rows,
        "probe_scale_sweep": {"scenario": config.sweep_scenario, "quantity": SWEEP_QUANTITY, "points": sweep_rows},
    }
    metrics_path = write_metrics_json(out_dir, format=FORMAT, split=SPLIT, config=config, results=results,
                                      figures=figures, seconds=seconds)
    parts = [
        "# SIM-LINES-4X: lines object, gridsize 1/2 × ideal/file probe",
        "",
        (f"N={config.N}, object {config.object_size} px, {config.n_images} training positions, "
         f"{config.epochs} epochs, {config.nphotons:.3g} photons at probe scale 1, seed {config.seed}. "
         f"Split — {SPLIT}. Amplitude metrics are absolute (no rescale); SSIM/PSNR/MAE after sub-pixel "
         "registration and global phase-offset removal."),
        "",
    ]
    if scenario_rows:
        parts += ["## Scenarios", "", markdown_table(scenario_rows), ""]
        if "scenarios" in figures:
            parts += [f"![scenarios]({figures['scenarios'].name})", ""]
    if sweep_rows:
        parts += [f"## Probe-scale sweep ({config.sweep_scenario})", "",
                  f"Scale s: {SWEEP_QUANTITY}.", "", markdown_table(sweep_rows), ""]
        for key in ("probe_scale_sweep", "probe_scale_sweep_metrics"):
            if key in figures:
                parts += [f"![{key}]({figures[key].name})", ""]
    return metrics_path, write_metrics_markdown(out_dir, parts, rows, seconds, unit="run")


# --------------------------------------------------------------------------- figures

def write_figures(out_dir: Path, rows: list[dict[str, Any]], comparisons: dict[str, Any], *,
                  dpi: int) -> dict[str, Path]:
    """The figure grids (and the sweep plot) for whichever rows exist."""
    figures: dict[str, Path] = {}
    scenario_rows = [r for r in rows if not r["sweep"]]
    sweep_rows = [r for r in rows if r["sweep"]]
    if scenario_rows:
        figures["scenarios"] = comparison_grid(out_dir / "scenarios.png", scenario_rows, comparisons, dpi=dpi)
    if sweep_rows:
        figures["probe_scale_sweep"] = comparison_grid(out_dir / "probe_scale_sweep.png", sweep_rows, comparisons,
                                                       dpi=dpi)
        figures["probe_scale_sweep_metrics"] = sweep_plot(out_dir / "probe_scale_sweep_metrics.png", sweep_rows, dpi=dpi)
    return figures


def _label(row: dict[str, Any]) -> str:
    probe = "file" if row["probe"] == "aberrated" else row["probe"]
    scale = f", probe ×{row['probe_scale']:g}" if row["sweep"] else ""
    return f"gs{row['gridsize']} {probe}{scale}"


def comparison_grid(path: Path, rows: list[dict[str, Any]], comparisons: dict[str, Any], *, dpi: int) -> Path:
    """One row per run: truth, reconstruction and error of the amplitude, then of the phase
    (registered, phase offset removed; truth and reconstruction share colour limits per row)."""
    import numpy as np

    from ptycho.figures.common import new_figure, save_figure, show_image

    fig, axes = new_figure(len(rows), 6, size=(15.0, 2.5 * len(rows) + 0.4))
    for i, row in enumerate(rows):
        cmp = comparisons.get(row["name"]) or comparisons.get(row["same_run_as"] or "")
        label = _label(row)
        if cmp is None:
            for ax in axes[i]:
                ax.axis("off")
            reason = f"failed at {row['failed_stage']}: {row['error']}" if row["failed_stage"] else "not evaluated"
            axes[i, 0].text(0.0, 0.5, f"{label}\n{reason[:150]}", fontsize=8, va="center", wrap=True,
                            transform=axes[i, 0].transAxes)
            continue
        truth, recon = cmp.truth_aligned, cmp.recon_aligned
        phase_truth = np.angle(truth)
        parts = (("amplitude", np.abs(truth), np.abs(recon), "gray", row["amplitude"]["ssim"]),
                 ("phase", phase_truth, phase_truth + np.angle(recon * np.conj(truth)), "viridis", row["phase"]["ssim"]))
        for j, (name, t, r, cmap, ssim) in enumerate(parts):
            vmin, vmax = float(min(t.min(), r.min())), float(max(t.max(), r.max()))
            show_image(fig, axes[i, 3 * j], t, f"{label}\ntruth {name}", cmap=cmap, vmin=vmin, vmax=vmax)
            show_image(fig, axes[i, 3 * j + 1], r, f"reconstruction {name}\nSSIM {cell(ssim)}", cmap=cmap,
                       vmin=vmin, vmax=vmax)
            err = r - t
            lim = max(float(np.abs(err).max()), 1e-12)
            show_image(fig, axes[i, 3 * j + 2], err, f"{name} error\nMAE {np.abs(err).mean():.3g}", cmap="RdBu_r",
                       vmin=-lim, vmax=lim)
    return save_figure(fig, path, dpi=dpi)


def sweep_plot(path: Path, rows: list[dict[str, Any]], *, dpi: int) -> Path:
    """SSIM (amplitude, phase) and the amplitude mean ratio against the probe scale (log axis);
    failed or NaN points are marked on the axis."""
    from ptycho.figures.common import new_figure, save_figure

    scales = [r["probe_scale"] for r in rows]
    fig, axes = new_figure(1, 2, size=(9.0, 3.4))
    left, right = axes[0, 0], axes[0, 1]
    for key, colour in (("amplitude", "tab:blue"), ("phase", "tab:orange")):
        values = [r[key]["ssim"] for r in rows]
        left.plot(scales, [float("nan") if v is None else v for v in values], "o-", color=colour, label=f"{key} SSIM")
    ratios = [r["amplitude_mean_ratio"] for r in rows]
    right.plot(scales, [float("nan") if v is None else v for v in ratios], "o-", color="k", label="recon / truth")
    right.axhline(1.0, color="grey", lw=1, ls="--")
    right.axhspan(0.95, 1.05, color="tab:green", alpha=0.15, label="±5 %")
    for ax in (left, right):
        bad = [s for s, r in zip(scales, rows) if r["nan"]["any"] or not r["ok"]]
        if bad:
            ax.plot(bad, [ax.get_ylim()[0]] * len(bad), "x", color="red", ms=9, label="NaN / failed")
        ax.set_xscale("log", base=2)
        ax.set_xticks(scales, [f"{s:g}" for s in scales])
        ax.set_xlabel("probe amplitude scale (photons × scale²)")
        ax.legend(fontsize=8)
    left.set_ylabel("SSIM")
    left.set_ylim(0, 1)
    right.set_ylabel("amplitude mean ratio")
    return save_figure(fig, path, dpi=dpi)
