"""``evaluate`` with several reconstructions: score them side by side against one truth
(docs/reconstruction.md#evaluation).

Every reconstruction is scored on the same global pixels: each one's support is cut to the pixels
that all of them (and the truth) support, so a solver with a larger field of view is not scored on
an easier or harder region than the others. Then each is scored as a single ``evaluate`` would
(:func:`~ptycho.workflows.evaluate.score_objects`: registration, phase offset, metrics, FRC), one
figure shows the truth and every reconstruction with the same colour limits, and
``metrics.json`` holds every reconstruction's metrics under its label.
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
from ptycho.metrics.compare import ComparisonResult

SIDE_BY_SIDE_FORMAT = "ptycho-metrics-side-by-side"


@dataclass(frozen=True)
class SideBySideResult:
    """What :func:`evaluate_side_by_side` wrote: ``metrics`` maps each label to its metrics (as in a
    single evaluation's ``metrics.json``); ``comparisons`` are in the order of the inputs."""

    out_dir: Path
    metrics_path: Path
    figure_path: Path
    labels: tuple[str, ...]
    metrics: dict[str, dict[str, Any]]
    comparisons: tuple[ComparisonResult, ...]


def _offset(image: ObjectImage, truth: ObjectImage) -> tuple[int, int]:
    """Whole-pixel position of ``image``'s pixel (0, 0) on ``truth``'s canvas (as ``overlap_canvases``)."""
    return round(image.origin_y - truth.origin_y), round(image.origin_x - truth.origin_x)


def _on_canvas(mask: np.ndarray, dy: int, dx: int, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` (an image's support) placed on a canvas of ``shape`` at ``(dy, dx)``; pixels off the
    canvas are dropped. With negative offsets this also cuts a canvas back to an image's frame."""
    out = np.zeros(shape, bool)
    H, W = mask.shape
    r0, r1, c0, c1 = max(dy, 0), min(dy + H, shape[0]), max(dx, 0), min(dx + W, shape[1])
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = mask[r0 - dy:r1 - dy, c0 - dx:c1 - dx]
    return out


def common_support(images: list[ObjectImage], truth: ObjectImage) -> list[ObjectImage]:
    """Each image with its support cut to the global pixels every image and the truth support.

    Raises
    ------
    DataError
        If no pixel is supported by all of them.
    """
    common = np.asarray(truth.support, bool).copy()
    for image in images:
        common &= _on_canvas(np.asarray(image.support, bool), *_offset(image, truth), truth.shape)
    if not common.any():
        raise DataError("the reconstructions share no supported pixel on the truth's canvas: "
                        "they cover different regions of the object")
    cut = []
    for image in images:
        dy, dx = _offset(image, truth)
        support = np.asarray(image.support, bool) & _on_canvas(common, -dy, -dx, image.shape)
        cut.append(ObjectImage(image.object, support, image.origin_x, image.origin_y, image.metadata))
    return cut


def unique_labels(paths: list[Path]) -> tuple[str, ...]:
    """File stems as labels (``pinn.npz`` → ``pinn``); repeated stems get their position appended."""
    stems = [Path(p).name.split(".")[0] or f"object{i + 1}" for i, p in enumerate(paths)]
    return tuple(s if stems.count(s) == 1 else f"{s}-{i + 1}" for i, s in enumerate(stems))


def evaluate_side_by_side(config: EvaluateConfig, object_paths: list[Path], truth_path: Path,
                          out_dir: Path) -> SideBySideResult:
    """Score every object file in ``object_paths`` against ``truth_path`` on their common support;
    write ``side_by_side.png`` and, last, ``metrics.json`` to ``out_dir``.

    Raises
    ------
    ConfigError
        An output that cannot be written or is one of the inputs (exit code 2).
    DataError
        Unreadable inputs, a truth that is not the one a reconstruction was made from
        (``check_truth``), no common support, or a common supported rectangle smaller than
        ``MIN_REGION_PX`` on a side (exit code 3).
    """
    from ptycho.config.base import to_plain
    from ptycho.io.atomic import json_default, write_text_atomic
    from ptycho.io.objects import read_truth
    from ptycho.io.paths import check_output_dir, refuse_overwriting_inputs
    from ptycho.workflows.evaluate import check_truth_matches, score_objects

    out_dir = check_output_dir(out_dir)
    labels = unique_labels(object_paths)
    inputs = {"truth": truth_path, **{f"object {label}": p for label, p in zip(labels, object_paths)}}
    refuse_overwriting_inputs([out_dir / "side_by_side.png", out_dir / "metrics.json"], inputs, "evaluate")
    truth = read_truth(truth_path)  # a dataset is validated like any input
    recons = [read_object(p) for p in object_paths]
    if config.check_truth:
        for recon, path in zip(recons, object_paths):
            check_truth_matches(recon, truth, path, truth_path)
    images = common_support(recons, truth)
    comparisons, metrics = [], {}
    for label, path, image in zip(labels, object_paths, images):
        cmp, (r0, r1, c0, c1), cut = score_objects(image, truth, config, where=str(path))
        comparisons.append(cmp)
        metrics[label] = {**cmp.metrics, "file": str(path), "scored_region": {
            "x0": cut.origin_x + c0, "y0": cut.origin_y + r0, "width": c1 - c0, "height": r1 - r0}}
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_path = side_by_side_figure(out_dir / "side_by_side.png", labels, comparisons, dpi=config.dpi)
    record = json_safe({"format": SIDE_BY_SIDE_FORMAT, "format_version": 1, "truth": str(truth_path),
                        "labels": list(labels), "reconstructions": metrics, "figure": str(figure_path),
                        "config": to_plain(config)})
    metrics_path = out_dir / "metrics.json"
    write_text_atomic(metrics_path, json.dumps(record, indent=2, sort_keys=True, allow_nan=False,
                                               default=json_default) + "\n")
    return SideBySideResult(out_dir, metrics_path, figure_path, labels, metrics, tuple(comparisons))


def side_by_side_figure(path: Path, labels: tuple[str, ...], comparisons: list[ComparisonResult], *,
                        dpi: int = 110) -> Path:
    """Amplitude (top) and phase (bottom): the truth, then each reconstruction registered to it, all
    with the truth's colour limits; titles carry each reconstruction's SSIM."""
    from ptycho.figures.common import new_figure, save_figure, show_image

    truth = comparisons[0].truth_aligned
    fig, axes = new_figure(2, len(comparisons) + 1, size=(3.4 * (len(comparisons) + 1), 6.2))
    for row, (name, key, cmap) in enumerate((("amplitude", "amplitude", "gray"), ("phase (rad)", "phase", "viridis"))):
        t = np.abs(truth) if key == "amplitude" else np.angle(truth)
        vmin, vmax = np.percentile(t, [0.5, 99.5])
        show_image(fig, axes[row, 0], t, f"truth {name}", cmap=cmap, vmin=vmin, vmax=vmax)
        for col, (label, cmp) in enumerate(zip(labels, comparisons), start=1):
            ref = cmp.truth_aligned
            r = (np.abs(cmp.recon_aligned) if key == "amplitude"
                 else np.angle(ref) + np.angle(cmp.recon_aligned * np.conj(ref)))
            ssim = (cmp.metrics.get(key) or {}).get("ssim")
            score = f"SSIM {ssim:.3f}" if ssim is not None else "SSIM –"
            show_image(fig, axes[row, col], r, f"{label} {name}\n{score}", cmap=cmap, vmin=vmin, vmax=vmax)
    return save_figure(fig, path, dpi=dpi)
