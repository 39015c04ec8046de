"""The result tables of a study (:mod:`ptycho.workflows.study`): the score columns of a row, text
cells, Markdown tables, and the ``metrics.json`` / ``metrics.md`` every study writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

Column = tuple[str, Callable[[dict[str, Any]], Any]]
"""A table column: its header and the function that reads its value from a row."""


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


METRIC_COLUMNS: tuple[Column, ...] = (
    ("amp SSIM", lambda r: r["amplitude"]["ssim"]),
    ("phase SSIM", lambda r: r["phase"]["ssim"]),
    ("amp PSNR", lambda r: r["amplitude"]["psnr"]),
    ("phase PSNR", lambda r: r["phase"]["psnr"]),
    ("amp MAE", lambda r: r["amplitude"]["mae"]),
    ("phase MAE", lambda r: r["phase"]["mae"]),
    ("amp mean ratio", lambda r: r["amplitude_mean_ratio"]),
    ("FRC-0.5 (px)", lambda r: r["frc50_px"] if r["ok"] else None),
    ("NaN", nan_flag),
)
"""The scores of a row (:func:`~ptycho.workflows.pipeline.run_summary`), one column each."""

FINAL_LOSS_COLUMN: Column = ("final loss", lambda r: r["final_loss"])
TRAIN_SECONDS_COLUMN: Column = ("train (s)", lambda r: r["train_seconds"])

TERMINAL_METRICS = ("amp SSIM", "phase SSIM", "amp PSNR", "phase PSNR", "amp mean ratio", "FRC-0.5 (px)", "NaN",
                    "train (s)")
"""The score columns a study command prints after its name column (the files have them all)."""


def cell(value: Any) -> str:
    """A table cell: ``–`` for None, ``yes``/``no`` for a bool, 4 significant digits for a float."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_rows(rows: Iterable[dict[str, Any]], columns: Sequence[Column],
               only: Iterable[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Column headers and text cells of a table of ``rows`` (``only``: a subset, by header)."""
    keep = None if only is None else set(only)
    chosen = [(c, get) for c, get in columns if keep is None or c in keep]
    return [c for c, _ in chosen], [[cell(get(r)) for _, get in chosen] for r in rows]


def markdown_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """A Markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def write_metrics_json(out_dir: Path, *, format: str, split: str, config: Any, results: dict[str, Any],
                       figures: dict[str, Path], seconds: float) -> Path:
    """``metrics.json``: ``format`` (version 1), ``split``, the study ``config``, then ``results``
    (the rows, under the study's own keys), ``figures`` and ``seconds``; NaN is written as null."""
    from ptycho.config.base import to_plain
    from ptycho.io.atomic import json_safe, write_text_atomic

    data = json_safe({"format": format, "format_version": 1, "split": split, "config": to_plain(config),
                      **results, "figures": {k: str(v) for k, v in figures.items()}, "seconds": seconds})
    return write_text_atomic(Path(out_dir) / "metrics.json", json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_metrics_markdown(out_dir: Path, parts: list[str], rows: Iterable[dict[str, Any]], seconds: float, *,
                           unit: str = "run") -> Path:
    """``metrics.md``: the study's ``parts`` (lines), a ``## Failures`` list of the failed rows and
    the total time (``unit`` names an arm: ``Each run's files are in `runs/<run>/`.``)."""
    from ptycho.io.atomic import write_text_atomic

    failed = [r for r in rows if not r["ok"]]
    lines = list(parts)
    if failed:
        lines += ["## Failures", ""] + [f"- {r['name']}: stage {r['failed_stage']}: {r['error']}" for r in failed] + [""]
    lines += [f"Total {seconds:.0f} s. Each {unit}'s files are in `runs/<{unit}>/`."]
    return write_text_atomic(Path(out_dir) / "metrics.md", "\n".join(lines) + "\n")
