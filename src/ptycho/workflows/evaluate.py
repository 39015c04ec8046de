"""``evaluate``: score a reconstruction against its ground truth (docs/reconstruction.md#evaluation).

1. Read the reconstruction (an object file) and the truth (a dataset's ``object`` or an object
   file); both carry an origin in global object pixels (a dataset's object has origin 0).
2. Cut both to the overlap of their canvases. Origins are matched to the nearest whole pixel; a
   fractional remainder is left to the sub-pixel registration.
3. Score only a large axis-aligned rectangle fully inside both supports (a dataset's object is
   supported everywhere; :func:`supported_rectangle`), refusing regions smaller than
   ``MIN_REGION_PX`` on a side.
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
from ptycho.errors import DataError
from ptycho.io.atomic import json_safe
from ptycho.io.objects import ObjectImage, read_object
from ptycho.metrics.compare import MIN_SIDE_PX, ComparisonResult, compare_objects
from ptycho.metrics.frc import THRESHOLD_HALF, THRESHOLD_ONE_SEVENTH, FRCResult

MIN_REGION_PX = MIN_SIDE_PX
"""Smallest side of the scored rectangle."""
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


def supported_rectangle(support: np.ndarray) -> tuple[int, int, int, int] | None:
    """A large axis-aligned rectangle fully inside ``support`` (greedy), or None if it is empty.

    Start from the support's bounding box and repeatedly drop the edge row or column holding the
    most unsupported pixels (ties: the larger unsupported fraction, then top, bottom, left,
    right) until none is left.

    Parameters
    ----------
    support : (H, W) bool

    Returns
    -------
    (row0, row1, col0, col1), half-open, or None.
    """
    bad = ~np.asarray(support, bool)
    rows, cols = np.flatnonzero((~bad).any(axis=1)), np.flatnonzero((~bad).any(axis=0))
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    row_bad = bad[:, c0:c1].sum(axis=1)  # unsupported pixels per row within the current columns
    col_bad = bad[r0:r1, :].sum(axis=0)
    while r1 > r0 and c1 > c0 and row_bad[r0:r1].any():
        w, h = c1 - c0, r1 - r0
        edges = [(row_bad[r0], row_bad[r0] / w, "top"), (row_bad[r1 - 1], row_bad[r1 - 1] / w, "bottom"),
                 (col_bad[c0], col_bad[c0] / h, "left"), (col_bad[c1 - 1], col_bad[c1 - 1] / h, "right")]
        edge = max(edges, key=lambda e: (e[0], e[1]))[2]  # max keeps the first of equals
        if edge in ("top", "bottom"):
            r = r0 if edge == "top" else r1 - 1
            col_bad[c0:c1] -= bad[r, c0:c1]
            r0, r1 = (r0 + 1, r1) if edge == "top" else (r0, r1 - 1)
        else:
            c = c0 if edge == "left" else c1 - 1
            row_bad[r0:r1] -= bad[r0:r1, c]
            c0, c1 = (c0 + 1, c1) if edge == "left" else (c0, c1 - 1)
    return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None


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
    region = supported_rectangle(recon.support & truth.support)
    if region is None:
        raise DataError(f"{where}: the reconstruction's support is empty where it overlaps the truth's")
    r0, r1, c0, c1 = region
    if min(r1 - r0, c1 - c0) < MIN_REGION_PX:
        raise DataError(f"{where}: the largest fully supported rectangle is {r1 - r0}×{c1 - c0} px; "
                        f"at least {MIN_REGION_PX}×{MIN_REGION_PX} is needed (scan a larger area or use a larger crop)")
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

    out_dir = Path(out_dir)
    recon = read_object(object_path)
    truth = read_object(truth_path)
    cmp, region, recon = score_objects(recon, truth, config, where=str(object_path))
    r0, r1, c0, c1 = region
    paths = {"comparison": out_dir / "comparison.png", "frc": out_dir / "frc.png",
             "config": out_dir / "config.yaml", "metrics": out_dir / "metrics.json"}
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
