"""Rows of the cost accounting (benchmarks/README.md#cost-accounting): FLOPs per pattern, the FLOP/s
a measurement achieved and its fraction of the machine's measured matmul rate, reported the same
way for the PINN (against TensorFlow's rate) and the iterative engines (against NumPy's)."""

from __future__ import annotations

from typing import Any

from benchmarks.matmul import fraction, limit_gflops
from benchmarks.report import Row, row


def efficiency_rows(what: str, label: str, flops_per_unit: dict[str, float], units_per_second: float | None,
                    rate: dict[str, Any] | None, *, unit_name: str = "pattern", library: str = "TensorFlow") -> list[Row]:
    """Three rows: FLOPs per unit (MFLOP, split by kind in the note), achieved GFLOP/s (FLOPs per
    unit × units/s) and that as a fraction of the measured ``library`` float32 matmul rate."""
    total = flops_per_unit["total"]
    split = ", ".join(f"{k} {flops_per_unit[k] / total:.1%}" for k in ("conv", "fft", "elementwise")
                      if flops_per_unit.get(k)) if total else ""
    achieved = total * units_per_second if units_per_second else None
    share = fraction(achieved, rate)
    limit = limit_gflops(rate)
    rate_note = (f"of {library}'s float32 matmul {limit:.1f} GFLOP/s ({rate['threads']})" if limit and rate
                 else f"{library}'s matmul rate was not measured in this run")
    return [
        row(f"{what}: FLOPs per {unit_name}", total / 1e6, unit="MFLOP", config=label, note=split),
        row(f"{what}: achieved FLOP rate", None if achieved is None else achieved / 1e9, unit="GFLOP/s", config=label,
            note=f"FLOPs per {unit_name} × {unit_name}s/s ({units_per_second:.4g}/s)" if units_per_second else ""),
        row(f"{what}: fraction of the matmul rate", None if share is None else 100 * share, unit="%", config=label,
            note=rate_note),
    ]


def stages_note(stages: dict[str, float], stitch_s: float | None = None) -> str:
    """``bundle load … s + grouping … s + pre-pass (global estimate) … s + network … s + reading/writing
    … s`` (+ ``stitch … s``): the stages of ``InferResult.stage_seconds`` in order."""
    names = (("load", "bundle load"), ("prepare", "grouping"), ("estimate", "pre-pass (global estimate)"),
             ("network", "network (first batch compiles)"), ("io", "reading/writing"))
    parts = [f"{text} {stages[key]:.2f} s" for key, text in names if key in stages]
    if stitch_s is not None:
        parts.append(f"stitch {stitch_s:.2f} s")
    return " + ".join(parts)
