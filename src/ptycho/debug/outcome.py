"""For arms that differ by design: does the *outcome* differ beyond run-to-run noise?

Two variants that differ in a setting (``grid`` vs ``nongrid``: ``simulate.scan.kind``) diverge
at the stage that setting feeds and at every stage after it, by construction; that their taps
differ says nothing. What a user asks is whether the final scores differ more than a rerun of
either arm would. So each arm is run again with other seeds (:func:`replicate_settings`: the
training seed, and the scan and noise seeds of the training and test scans; same object and
probe), and each headline score's difference between the arms is compared with its spread
within the arms (:func:`judge_outcome`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DESIGN_STAGES: tuple[tuple[str, str], ...] = (
    ("simulate.", "simulate"), ("test_scan_seed", "simulate"), ("test_n_images", "simulate"),
    ("train.n_groups", "group"), ("train.neighbors", "group"), ("train.oversample", "group"),
    ("train.model.gridsize", "group"), ("train.", "train"), ("infer.", "infer"), ("stitch.", "stitch"),
    ("evaluate.", "evaluate"),
)
"""Config key prefix → the first stage it feeds (first match wins)."""
OUTCOME_TAPS = ("amplitude_ssim", "phase_ssim", "amplitude_mae", "phase_mae")
"""Headline scores judged."""
NOISE_FACTOR = 2.0
"""A difference counts when it exceeds this many times the larger within-arm spread …"""
MIN_DIFFERENCE = {"amplitude_ssim": 0.01, "phase_ssim": 0.01, "amplitude_mae": 1e-3, "phase_mae": 1e-3}
"""… and this much (two runs can agree by chance: a spread of zero is not "no noise")."""
REPLICATE_SEED_STEP = 1000
"""Added to each seed of a replicate run, far from the seeds the arms use themselves."""


def design_stage(diff: Sequence[Mapping[str, Any]], stages: Sequence[str]) -> tuple[str, list[str]] | None:
    """The first stage the arms' differing settings feed, and those settings (None if the configs
    are identical)."""
    if not diff:
        return None
    order = {name: i for i, name in enumerate(stages)}
    first: str | None = None
    for row in diff:
        stage = next((s for prefix, s in DESIGN_STAGES if row["key"].startswith(prefix)), stages[0])
        if first is None or order.get(stage, 0) < order.get(first, 0):
            first = stage
    return first, [row["key"] for row in diff]


def replicate_settings(config: Any, k: int = 1) -> dict[str, Any]:
    """Dotted settings of the ``k``-th replicate of an arm whose pipeline config is ``config``:
    every seed of a rerun moved, the object and probe (``simulate.seed``) kept."""
    step = k * REPLICATE_SEED_STEP
    scan_seed = config.simulate.scan.seed if config.simulate.scan.seed is not None else config.simulate.seed
    return {"train.seed": config.train.seed + step, "simulate.scan.seed": scan_seed + step,
            "test_scan_seed": config.test_scan_seed + step}


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]


def judge_outcome(runs_a: Sequence[Mapping[str, Any]], runs_b: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compare the evaluate taps of the runs of A (first the arm, then its replicates) with B's.

    Returns
    -------
    dict
        ``{"differs": bool, "scores": {tap: {"a": [...], "b": [...], "difference", "noise",
        "threshold", "differs"}}}``: ``difference`` between the arms' means, ``noise`` the larger
        within-arm range; a score differs when the difference exceeds both
        ``NOISE_FACTOR·noise`` and its :data:`MIN_DIFFERENCE`.
    """
    scores: dict[str, Any] = {}
    for tap in OUTCOME_TAPS:
        a, b = _finite([r.get(tap) for r in runs_a]), _finite([r.get(tap) for r in runs_b])
        if not a or not b:
            continue
        noise = max(max(a) - min(a), max(b) - min(b))
        difference = abs(sum(a) / len(a) - sum(b) / len(b))
        threshold = max(NOISE_FACTOR * noise, MIN_DIFFERENCE[tap])
        scores[tap] = {"a": a, "b": b, "difference": difference, "noise": noise, "threshold": threshold,
                       "differs": difference > threshold}
    return {"differs": any(s["differs"] for s in scores.values()), "scores": scores,
            "runs_per_arm": min(len(runs_a), len(runs_b))}


def outcome_sentence(outcome: Mapping[str, Any] | None, reason: str = "") -> str:
    """The outcome part of the verdict."""
    if not outcome or not outcome.get("scores"):
        return f"outcome not judged ({reason or 'no scores'})"
    scores = outcome["scores"]
    shown = [name for name in ("phase_ssim", "amplitude_ssim") if name in scores] or list(scores)
    parts = []
    for name in shown:
        s = scores[name]
        parts.append(f"{name.replace('_', ' ')} {sum(s['a']) / len(s['a']):.3g} vs {sum(s['b']) / len(s['b']):.3g} "
                     f"(difference {s['difference']:.2g}, run-to-run spread {s['noise']:.2g})")
    differing = [name for name, s in scores.items() if s["differs"]]
    if differing:
        head = f"the outcome differs beyond run-to-run noise in {', '.join(differing)}"
    else:
        head = "the outcome is the same within run-to-run noise"
    return f"{head}: {'; '.join(parts)} over {outcome['runs_per_arm']} runs per arm"


def outcome_markdown(report: Mapping[str, Any], num: Any, cell: Any) -> list[str]:
    """``report.md`` lines for arms that differ by design: their scores over every run of each
    (``num`` and ``cell`` format numbers and table cells as the rest of the report does)."""
    design, outcome = report.get("designed_difference"), report.get("outcome")
    if not design:
        return []
    keys = ", ".join(f"`{k}`" for k in design["keys"])
    lines = ["", "## Outcome vs run-to-run noise", "",
             f"The arms differ by design in {keys} (from {design['stage']} on), so their taps diverge there "
             "by construction; what counts is whether the final scores differ more than reruns of one arm do."]
    if not outcome:
        return lines
    lines += ["", "| score | A runs | B runs | difference of means | run-to-run spread | threshold | differs |",
              "|---|---|---|---|---|---|---|"]
    for name, sc in outcome["scores"].items():
        runs_a, runs_b = ", ".join(num(v) for v in sc["a"]), ", ".join(num(v) for v in sc["b"])
        lines.append(f"| `{name}` | {runs_a} | {runs_b} | {cell(sc['difference'])} | {cell(sc['noise'])} | "
                     f"{cell(sc['threshold'])} | {'**yes**' if sc['differs'] else 'no'} |")
    return lines
