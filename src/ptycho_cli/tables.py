"""Rich tables of results that several commands print (evaluate, the pipeline demo, debug-ab)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table

LEGACY_PHASE_SSIM_LABEL = "phase SSIM (legacy (φ+π)/2π, range 1)"
_IMAGE_ROWS = (("MAE", "mae"), ("PSNR (dB)", "psnr"), ("SSIM", "ssim"), ("MS-SSIM", "ms_ssim"))


def _num(value: Any) -> str:
    """A metric as text: 4 significant digits; ``–`` for a missing/None value; ``inf``/``nan`` as is."""
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _resolution(cycles: Any, px: Any) -> str:
    if cycles is None:
        return "not crossed"
    return f"{_num(px)} px ({_num(cycles)} cycles/px)"


def metrics_table(metrics: Mapping[str, Any], *, title: str = "metrics") -> Table:
    """The headline metrics of ``ptycho evaluate`` as a rich table.

    Parameters
    ----------
    metrics : mapping
        As in ``metrics.json`` (or ``ComparisonResult.metrics``): ``amplitude``,
        ``amplitude_rescaled``, ``phase`` (each with ``mae``, ``psnr``, ``ssim``, ``ms_ssim``),
        ``frc``, ``amplitude_mean``, ``phase_ssim_legacy``. Missing entries show as ``–``.
    """
    amp, resc, phase = (metrics.get(k) or {} for k in ("amplitude", "amplitude_rescaled", "phase"))
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("amplitude", justify="right")
    table.add_column("amplitude (mean-ratio rescaled)", justify="right")
    table.add_column("phase", justify="right")
    for label, key in _IMAGE_ROWS:
        table.add_row(label, _num(amp.get(key)), _num(resc.get(key)), _num(phase.get(key)))
    frc = metrics.get("frc") or {}
    table.add_row("FRC-0.5 resolution (complex object)", _resolution(frc.get("frc50_cycles_per_px"), frc.get("frc50_px")), "", "")
    table.add_row("FRC-1/7 resolution (complex object)", _resolution(frc.get("frc1_7_cycles_per_px"), frc.get("frc1_7_px")), "", "")
    table.add_row("amplitude mean ratio (recon/truth)", _num((metrics.get("amplitude_mean") or {}).get("ratio")), "", "")
    table.add_row(LEGACY_PHASE_SSIM_LABEL, "", "", _num(metrics.get("phase_ssim_legacy")))
    shift = metrics.get("shift_px")
    if shift:
        table.add_row("registration shift (dy, dx) px", ", ".join(_num(v) for v in shift), "", "")
    return table


_SIDE_BY_SIDE_ROWS = (
    ("phase SSIM", ("phase", "ssim")), ("amplitude SSIM", ("amplitude", "ssim")),
    ("phase PSNR (dB)", ("phase", "psnr")), ("amplitude PSNR (dB)", ("amplitude", "psnr")),
    ("FRC-0.5 (cycles/px)", ("frc", "frc50_cycles_per_px")),
    ("amplitude mean ratio (recon/truth)", ("amplitude_mean", "ratio")),
)


def side_by_side_table(metrics: Mapping[str, Mapping[str, Any]], *, title: str = "side by side") -> Table:
    """One column per reconstruction (``{label: metrics}`` as ``evaluate`` writes them with several
    objects), one row per headline metric; the best value of each SSIM/PSNR/FRC row is marked ``*``.
    An FRC that never falls below 0.5 reads "not crossed" and counts as Nyquist (0.5 cycles/px)."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for label in metrics:
        table.add_column(label, justify="right")
    for name, (section, key) in _SIDE_BY_SIDE_ROWS:
        values = [(m.get(section) or {}).get(key) for m in metrics.values()]
        if section == "frc":
            values = [0.5 if v is None else v for v in values]
        finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        best = max(finite) if len(finite) > 1 and section != "amplitude_mean" else None
        cells = ["not crossed" if section == "frc" and v == 0.5 else _num(v) for v in values]
        table.add_row(name, *(c + (" *" if best is not None and v == best else "") for c, v in zip(cells, values)))
    return table
