"""``evaluate``: score a reconstruction against its ground truth (docs/reconstruction.md#evaluation).

1. Read the reconstruction (an object file) and the truth (a dataset's ``object`` or an object
   file); both carry an origin in global object pixels (a dataset's object has origin 0).
2. Cut both to the overlap of their canvases. Origins are matched to the nearest whole pixel; a
   fractional remainder is left to the sub-pixel registration.
3. Score the largest axis-aligned rectangle fully inside both supports (a dataset's object is
   supported everywhere; :func:`supported_rectangle`, exact, so holes in a random scan's support
   do not shrink it to a strip), refusing regions smaller than ``MIN_REGION_PX`` on a side.
4. :func:`~ptycho.metrics.compare.compare_objects`: registration, phase offset (and ramp)
   removal, amplitude/phase metrics, FRC.
5. Write ``comparison.png``, ``frc.png``, ``config.yaml`` and, last, ``metrics.json`` (every
   number; NaN/inf as null), each atomically: a complete ``metrics.json`` means a complete run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.config.evaluate import EvaluateConfig
from ptycho.errors import DataError, field
from ptycho.io.atomic import json_safe
from ptycho.io.objects import ObjectImage, read_object, read_truth
from ptycho.metrics.compare import MIN_SIDE_PX, ComparisonResult, compare_objects
from ptycho.metrics.frc import THRESHOLD_HALF, THRESHOLD_ONE_SEVENTH, FRCResult

MIN_REGION_PX = MIN_SIDE_PX
"""Smallest side of the scored rectangle."""
REGISTRATION_RESERVE_PX = 4
"""Preferred extra side per edge, so the registration margin cut later leaves ``MIN_REGION_PX``."""
METRICS_FORMAT = "ptycho-metrics"


@dataclass(frozen=True)
class EvaluateResult:
    """Paths written by :func:`evaluate`, the JSON-ready metrics and the comparison itself.

    ``region`` is ``(row0, row1, col0, col1)`` (half-open) on the reconstruction's canvas.
    """

    out_dir: Path
    metrics_path: Path
    comparison_path: Path
    frc_path: Path
    config_path: Path
    metrics: dict[str, Any]
    region: tuple[int, int, int, int]
    comparison: ComparisonResult


def overlap_canvases(recon: ObjectImage, truth: ObjectImage) -> tuple[ObjectImage, ObjectImage]:
    """Both images cut to their common global pixels (origins updated, supports cut alike).

    Raises
    ------
    DataError
        If the canvases do not overlap.
    """
    dy = round(recon.origin_y - truth.origin_y)  # recon pixel (0, 0) in truth pixels
    dx = round(recon.origin_x - truth.origin_x)
    (Hr, Wr), (Ht, Wt) = recon.shape, truth.shape
    r0, r1 = max(dy, 0), min(dy + Hr, Ht)
    c0, c1 = max(dx, 0), min(dx + Wr, Wt)
    if r1 <= r0 or c1 <= c0:
        raise DataError(
            f"reconstruction and truth do not overlap: reconstruction covers global rows "
            f"{recon.origin_y:g}…{recon.origin_y + Hr - 1:g}, cols {recon.origin_x:g}…{recon.origin_x + Wr - 1:g}; "
            f"truth covers rows {truth.origin_y:g}…{truth.origin_y + Ht - 1:g}, cols {truth.origin_x:g}…{truth.origin_x + Wt - 1:g}"
        )

    def cut(image: ObjectImage, rows: slice, cols: slice) -> ObjectImage:
        return ObjectImage(image.object[rows, cols], image.support[rows, cols], image.origin_x + cols.start,
                           image.origin_y + rows.start, image.metadata)

    return cut(recon, slice(r0 - dy, r1 - dy), slice(c0 - dx, c1 - dx)), cut(truth, slice(r0, r1), slice(c0, c1))


def supported_rectangle(support: np.ndarray, min_side: int = 1) -> tuple[int, int, int, int] | None:
    """The largest-area axis-aligned rectangle fully inside ``support`` whose sides are both at
    least ``min_side``, or None if there is none.

    Exact: row by row, the heights of supported runs form a histogram whose maximal rectangles
    (one per bar, found with a stack) include every maximal rectangle of the support, so holes
    anywhere, not only at the edges, are handled and the result does not collapse to a strip.

    Parameters
    ----------
    support : (H, W) bool
    min_side : int
        Smallest accepted height and width, in pixels.

    Returns
    -------
    (row0, row1, col0, col1), half-open, or None.
    """
    support = np.asarray(support, bool)
    H, W = support.shape
    heights = np.zeros(W + 1, np.int64)  # a zero bar at the end flushes the stack
    best, best_area = None, 0
    for r in range(H):
        heights[:W] = np.where(support[r], heights[:W] + 1, 0)
        stack: list[tuple[int, int]] = []  # (first column, height), heights increasing
        for c, h in enumerate(heights.tolist()):
            start = c
            while stack and stack[-1][1] >= h:
                first, height = stack.pop()
                width = c - first
                if height >= min_side and width >= min_side and height * width > best_area:
                    best, best_area = (r - height + 1, r + 1, first, c), height * width
                start = first
            stack.append((start, h))
    return best


def check_truth_matches(recon: ObjectImage, truth: ObjectImage, object_path: Path, truth_path: Path) -> None:
    """Refuse a truth other than the one the reconstruction was made from, when the reconstruction
    records it (``provenance.object_fingerprint``, written by ``infer``)."""
    provenance = recon.metadata.get("provenance") or {}
    expected = provenance.get("object_fingerprint") if isinstance(provenance, dict) else None
    if expected and expected != truth.metadata.get("object_fingerprint"):
        source = provenance.get("dataset", "another dataset")
        raise DataError(f"{truth_path}: not the ground truth of {object_path}, which was reconstructed from "
                        f"{source} (another object); pass that dataset as the truth, or set "
                        f"{field('evaluate.check_truth')} to false to score against this one anyway")


def score_objects(recon: ObjectImage, truth: ObjectImage, config: EvaluateConfig,
                  where: str = "reconstruction") -> tuple[ComparisonResult, tuple[int, int, int, int], ObjectImage]:
    """Compare ``recon`` with ``truth`` on their common fully supported rectangle (docs/reconstruction.md#evaluation):
    returns the :func:`~ptycho.metrics.compare.compare_objects` result, the rectangle
    ``(r0, r1, c0, c1)`` and the reconstruction cut to the overlap canvas the rectangle refers to.

    Raises
    ------
    DataError
        No common support, or a rectangle under ``MIN_REGION_PX`` on a side (``where`` names the input).
    """
    recon, truth = overlap_canvases(recon, truth)
    common = recon.support & truth.support
    if not common.any():
        raise DataError(f"{where}: the reconstruction's support is empty where it overlaps the truth's")
    region = supported_rectangle(common, min_side=MIN_REGION_PX + 2 * REGISTRATION_RESERVE_PX)
    region = region or supported_rectangle(common, min_side=MIN_REGION_PX)
    if region is None:
        largest = supported_rectangle(common)
        raise DataError(f"{where}: the largest fully supported rectangle is {largest[1] - largest[0]}×"
                        f"{largest[3] - largest[2]} px; no {MIN_REGION_PX}×{MIN_REGION_PX} rectangle is fully "
                        "supported (scan a larger area or with more overlap, or use a larger crop)")
    r0, r1, c0, c1 = region
    cmp = compare_objects(recon.object[r0:r1, c0:c1], truth.object[r0:r1, c0:c1], register=config.registration,
                          upsample=config.upsample, phase_ramp=config.phase_ramp, register_on=config.register_on)
    return cmp, region, recon


def evaluate(config: EvaluateConfig, object_path: Path, truth_path: Path, out_dir: Path) -> EvaluateResult:
    """Score the object file at ``object_path`` against ``truth_path``; write the results to ``out_dir``.

    Raises
    ------
    DataError
        Unreadable inputs, a dataset without ground truth, canvases that do not overlap, or a
        supported region smaller than ``MIN_REGION_PX``² (exit code 3).
    """
    import yaml

    from ptycho.config.base import to_plain
    from ptycho.io.atomic import json_default, write_text_atomic
    from ptycho.io.paths import check_output_dir, refuse_overwriting_inputs

    out_dir = check_output_dir(out_dir)
    paths = {"comparison": out_dir / "comparison.png", "frc": out_dir / "frc.png",
             "config": out_dir / "config.yaml", "metrics": out_dir / "metrics.json"}
    refuse_overwriting_inputs(paths.values(), {"object": object_path, "truth": truth_path}, "evaluate")
    recon = read_object(object_path)
    truth = read_truth(truth_path)
    if config.check_truth:
        check_truth_matches(recon, truth, object_path, truth_path)
    cmp, region, recon = score_objects(recon, truth, config, where=str(object_path))
    r0, r1, c0, c1 = region
    comparison_figure(paths["comparison"], cmp, dpi=config.dpi)
    frc_figure(paths["frc"], cmp.frc, dpi=config.dpi)
    write_text_atomic(paths["config"], yaml.safe_dump({"evaluate": to_plain(config)}, sort_keys=False))
    metrics = json_safe({
        "format": METRICS_FORMAT, "format_version": 1, **cmp.metrics,
        "frc_curve": {"frequency_cycles_per_px": cmp.frc.frequency, "frc": cmp.frc.frc},
        "scored_region": {"x0": recon.origin_x + c0, "y0": recon.origin_y + r0, "width": c1 - c0, "height": r1 - r0},
        "origin_offset_px": [recon.origin_y - truth.origin_y, recon.origin_x - truth.origin_x],
        "files": {"object": str(object_path), "truth": str(truth_path), **{k: str(v) for k, v in paths.items()}},
        "config": to_plain(config),
    })
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False, default=json_default)
    write_text_atomic(paths["metrics"], text + "\n")
    return EvaluateResult(out_dir, paths["metrics"], paths["comparison"], paths["frc"], paths["config"],
                          metrics, region, cmp)


def comparison_figure(path: Path, cmp: ComparisonResult, *, dpi: int = 110) -> Path:
    """2×3 grid: truth / reconstruction / error for amplitude (top) and phase (bottom); truth and
    reconstruction share colour limits per row, the error map is symmetric about 0."""
    from ptycho.figures.common import new_figure, save_figure, show_image

    truth, recon = cmp.truth_aligned, cmp.recon_aligned
    phase_truth = np.angle(truth)
    rows = (("amplitude", np.abs(truth), np.abs(recon), "gray"),
            ("phase (rad)", phase_truth, phase_truth + np.angle(recon * np.conj(truth)), "viridis"))
    fig, axes = new_figure(2, 3, size=(11.0, 6.6))
    for i, (name, t, r, cmap) in enumerate(rows):
        vmin, vmax = float(min(t.min(), r.min())), float(max(t.max(), r.max()))
        show_image(fig, axes[i, 0], t, f"truth {name}", cmap=cmap, vmin=vmin, vmax=vmax)
        show_image(fig, axes[i, 1], r, f"reconstruction {name}", cmap=cmap, vmin=vmin, vmax=vmax)
        err = r - t
        lim = max(float(np.abs(err).max()), 1e-12)
        show_image(fig, axes[i, 2], err, f"error {name}, MAE {np.abs(err).mean():.3g}", cmap="RdBu_r", vmin=-lim, vmax=lim)
    return save_figure(fig, path, dpi=dpi)


def frc_figure(path: Path, frc: FRCResult, *, dpi: int = 110) -> Path:
    """The FRC curve with the 0.5 and 1/7 thresholds and their crossings marked."""
    from ptycho.figures.common import new_figure, save_figure

    fig, axes = new_figure(1, 1, size=(6.0, 4.0))
    ax = axes[0, 0]
    ax.plot(frc.frequency, frc.frc, color="k", lw=1.5, label="FRC")
    for threshold, name, colour in ((THRESHOLD_HALF, "0.5", "tab:blue"), (THRESHOLD_ONE_SEVENTH, "1/7", "tab:orange")):
        ax.axhline(threshold, color=colour, ls="--", lw=1)
        f = frc.resolution(threshold)
        if f is None:
            label = f"FRC-{name}: not crossed"
        else:
            res = f"{1 / f:.3g} px" if f > 0 else "∞"
            label = f"FRC-{name}: {f:.3g} cycles/px ({res})"
            ax.axvline(f, color=colour, ls=":", lw=1)
        ax.plot([f if f is not None else np.nan], [threshold], "o", color=colour, label=label)
    ax.set_xlim(0, 0.5)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("Fourier ring correlation")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path, dpi=dpi)
