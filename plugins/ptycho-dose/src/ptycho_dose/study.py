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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ptycho_dose.config import SECTION, DoseConfig, dose_label, variant_settings

FORMAT = "ptycho-dose-study"
SPLIT = ("test scan: a second, independent random scan (seed test_scan_seed) of the same object at the "
         "same dose, half as many positions unless test_n_images is set; scored over its stitched area")
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Arm:
    """One pipeline run of the study."""

    name: str
    dose: float
    dose_label: str
    loss: str
    config: Any  # ptycho.config.pipeline.PipelineConfig


@dataclass
class StudyResult:
    """What :func:`run_study` wrote and found."""

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
        """0 unless every arm failed: then the exit code of the first failure."""
        if self.rows and all(not r["ok"] for r in self.rows):
            first = next(iter(self.errors.values()), None)
            return int(getattr(first, "exit_code", 1))
        return 0


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
    from ptycho.config.base import to_plain
    from ptycho.config.pipeline import STAGES
    from ptycho.io.atomic import write_text_atomic
    from ptycho.registry import Components
    from ptycho.workflows.pipeline import run_pipeline, run_summary

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    components = components or Components.builtin()
    config_path = write_text_atomic(out_dir / "study.config.yaml",
                                    yaml.safe_dump({SECTION: to_plain(config)}, sort_keys=False))
    arms = plan(config)
    total = len(arms) * len(STAGES)
    report = progress or (lambda done, total, detail: None)
    rows: list[dict[str, Any]] = []
    comparisons: dict[str, Any] = {}
    patterns: dict[float, Any] = {}
    errors: dict[str, BaseException] = {}
    state = {"done": 0}
    for i, arm in enumerate(arms):
        on_stage, on_progress = _callbacks(arm.name, state, total, report)
        run = run_pipeline(arm.config, out_dir / "runs" / arm.name, components, on_stage=on_stage,
                           progress=on_progress, raise_errors=False)
        state["done"] = (i + 1) * len(STAGES)  # stages skipped after a failure count as done
        report(state["done"], total, f"{arm.name} done")
        if run.error is not None:
            errors[arm.name] = run.error[1]
        if "evaluate" in run.results:
            comparisons[arm.name] = run.results["evaluate"].comparison
        if arm.dose not in patterns and "simulate" in run.results:
            patterns[arm.dose] = read_pattern(run.paths["train"], config.pattern_index)
        rows.append(_row(arm, run, run_summary(run)))
    figures = write_figures(out_dir, config, rows, comparisons, patterns)
    seconds = time.perf_counter() - t0
    metrics_path, markdown_path = write_tables(out_dir, config, rows, figures, seconds)
    return StudyResult(out_dir, metrics_path, markdown_path, config_path, figures, rows, seconds, errors)


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


def read_pattern(dataset_path: Path, index: int) -> Any:
    """Pattern ``index`` (clipped to the dataset) of a dataset, counts, ``(N, N)`` float64."""
    import numpy as np

    from ptycho.io.datasets import load_dataset

    with load_dataset(dataset_path) as ds:
        i = min(index, ds.n_patterns - 1)
        return np.asarray(ds.read_patterns(slice(i, i + 1))[0], dtype=np.float64)


def _row(arm: Arm, run: Any, summary: dict[str, Any]) -> dict[str, Any]:
    sim = arm.config.simulate
    return {
        "name": arm.name, "variant": f"dose-{arm.name}", "dose": arm.dose_label, "nphotons": arm.dose,
        "loss": arm.loss, "gridsize": sim.gridsize, "N": sim.N, "n_train": sim.scan.n_images,
        "n_test": arm.config.test_images, "run_dir": str(run.paths.dir), **summary,
    }


# --------------------------------------------------------------------------- tables

def nan_flag(row: dict[str, Any]) -> str:
    """``no``, or what was non-finite (``loss×2``, ``recovered×1``, ``patches``, ``failed at …``)."""
    nan, parts = row["nan"], []
    if nan["loss_nonfinite"]:
        parts.append(f"loss×{nan['loss_nonfinite']}")
    if nan["nan_recoveries"]:
        parts.append(f"recovered×{nan['nan_recoveries']}")
    if nan["patches_nonfinite"]:
        parts.append("patches")
    if row["failed_stage"]:
        parts.append(f"failed at {row['failed_stage']}")
    return ", ".join(parts) if parts else ("yes" if nan["any"] else "no")


COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("arm", lambda r: r["name"]),
    ("photons", lambda r: f"{r['nphotons']:.3g}"),
    ("loss", lambda r: r["loss"]),
    ("amp SSIM", lambda r: r["amplitude"]["ssim"]),
    ("phase SSIM", lambda r: r["phase"]["ssim"]),
    ("amp PSNR", lambda r: r["amplitude"]["psnr"]),
    ("phase PSNR", lambda r: r["phase"]["psnr"]),
    ("amp MAE", lambda r: r["amplitude"]["mae"]),
    ("phase MAE", lambda r: r["phase"]["mae"]),
    ("amp mean ratio", lambda r: r["amplitude_mean_ratio"]),
    ("FRC-0.5 (px)", lambda r: r["frc50_px"] if r["ok"] else None),
    ("NaN", nan_flag),
    ("final loss", lambda r: r["final_loss"]),
    ("train (s)", lambda r: r["train_seconds"]),
)
TERMINAL_COLUMNS = ("arm", "amp SSIM", "phase SSIM", "amp PSNR", "phase PSNR", "amp mean ratio", "FRC-0.5 (px)",
                    "NaN", "train (s)")
"""The columns the command prints (the files have them all)."""


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_rows(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Column headers and text cells of the metrics table (``columns``: a subset, by header)."""
    chosen = [(c, get) for c, get in COLUMNS if columns is None or c in columns]
    return [c for c, _ in chosen], [[cell(get(r)) for _, get in chosen] for r in rows]


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


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
    return _markdown(["photons", *[loss.upper() for loss in config.losses]], body)


def write_tables(out_dir: Path, config: DoseConfig, rows: list[dict[str, Any]], figures: dict[str, Path],
                 seconds: float) -> tuple[Path, Path]:
    """``metrics.json`` (every number; NaN as null) and ``metrics.md``."""
    from ptycho.config.base import to_plain
    from ptycho.io.atomic import write_text_atomic
    from ptycho.workflows.evaluate import json_safe

    data = json_safe({"format": FORMAT, "format_version": 1, "split": SPLIT, "config": to_plain(config),
                      "arms": rows, "figures": {k: str(v) for k, v in figures.items()}, "seconds": seconds})
    metrics_path = write_text_atomic(out_dir / "metrics.json", json.dumps(data, indent=2, allow_nan=False) + "\n")
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
        _markdown(*table_rows(rows)),
        "",
    ]
    for key in ("dose_comparison", "dose_comparison_phase"):
        if key in figures:
            parts += [f"![{key}]({figures[key].name})", ""]
    failed = [r for r in rows if not r["ok"]]
    if failed:
        parts += ["## Failures", ""] + [f"- {r['name']}: stage {r['failed_stage']}: {r['error']}" for r in failed] + [""]
    parts += [f"Total {seconds:.0f} s. Each arm's files are in `runs/<arm>/`."]
    markdown_path = write_text_atomic(out_dir / "metrics.md", "\n".join(parts) + "\n")
    return metrics_path, markdown_path


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
    """One row per dose: a training diffraction pattern as ``log10(1 + counts)``, then each loss's
    reconstruction (``part``: amplitude or phase; registered, phase offset removed). All
    reconstructions share one colour range, from the truth's."""
    import numpy as np

    from ptycho.figures.common import new_figure, save_figure, show_image

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
    return save_figure(fig, path, dpi=config.figure_dpi)
