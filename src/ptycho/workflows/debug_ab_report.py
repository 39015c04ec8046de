"""The ``debug-ab`` report: ``report.json`` (every tap, strict JSON), ``report.md`` (tables) and
``figure.png`` (the arms side by side), each written atomically."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptycho import __version__
from ptycho.config.base import to_plain
from ptycho.config.pipeline import DebugABConfig
from ptycho.debug.outcome import outcome_markdown, outcome_sentence
from ptycho.io.atomic import json_default, json_safe, write_text_atomic

from ptycho.workflows.debug_ab_runs import ArmRun, StageResult

REPORT_FORMAT = "ptycho-debug-ab"
SHOWN_DIVERGED = 4
"""Diverged taps named in the one-line verdict."""


def format_value(value: Any) -> str:
    """A tap value as report text: ``–`` for none, lower-case booleans, 6 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _cell(value: Any) -> str:
    """A Markdown table cell: the number formatted, ``|`` escaped."""
    return format_value(value).replace("|", "\\|")


def _secs(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f}"


def verdict(runs: Sequence[ArmRun], results: Sequence[StageResult], design: tuple[str, list[str]] | None = None,
            outcome: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """``(first divergent stage or None, one-line verdict)``. A stage where both arms failed is a
    problem of the shared pipeline, not a divergence; the verdict names it after any divergence.

    For arms that differ by design (``design``: the first stage their settings feed, and the
    settings), a divergence from that stage on is marked as expected and the verdict ends with
    the outcome judgement (``outcome``, :func:`ptycho.debug.outcome.outcome_sentence`)."""
    first, line = _divergence(runs, results)
    if design is None:
        return first, line
    stage, keys = design
    order = [r.stage for r in results]
    shown = ", ".join(keys[:SHOWN_DIVERGED]) + (f" and {len(keys) - SHOWN_DIVERGED} more" if len(keys) > SHOWN_DIVERGED else "")
    if first is not None and first in order and stage in order and order.index(first) >= order.index(stage):
        line = line.replace(f"first divergence at {first}", f"first divergence at {first} (expected: the arms differ "
                            f"by design in {shown}, from {stage} on)", 1)
    outcome = outcome or {}
    return first, f"{line}; {outcome_sentence(outcome.get('judged'), outcome.get('reason', ''))}"


def _divergence(runs: Sequence[ArmRun], results: Sequence[StageResult]) -> tuple[str | None, str]:
    ta, tb = (r.arm.title for r in runs)
    first, line = None, ""
    for result in results:
        if result.status == "failed":
            failure = f"both arms failed at {result.stage}: {next(iter(result.errors.values()))}"
            return first, f"{line}; then {failure}" if line else failure
        if result.status != "diverged" or first is not None:
            continue
        first = result.stage
        if result.errors:
            label, message = next(iter(result.errors.items()))
            line = f"first divergence at {result.stage}: arm {label} failed ({message})"
        else:
            taps = result.diverged_taps
            shown = ", ".join(f"{t.name} (A {format_value(t.a)} vs B {format_value(t.b)})" for t in taps[:SHOWN_DIVERGED])
            more = f" and {len(taps) - SHOWN_DIVERGED} more" if len(taps) > SHOWN_DIVERGED else ""
            line = f"first divergence at {result.stage}: {shown}{more}"
    if first is None:
        stages = ", ".join(r.stage for r in results) or "none"
        line = f"{ta} and {tb} agree within tolerance at every stage run ({stages})"
    return first, line


STAGE_FILES = {"simulate": ("train", "test"), "train": ("model",), "infer": ("patches",), "stitch": ("object",),
               "evaluate": ("eval",)}
"""The files of an arm each stage writes (listed in the report only when that stage ran)."""


def _readable(value: Any) -> Any:
    """Config values for the report: non-finite floats as text (``inf``), which JSON cannot hold."""
    value = to_plain(value)
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _arm_record(run: ArmRun, out_dir: Path) -> dict[str, Any]:
    files = {name: run.path(name) for stage in run.taps for name in STAGE_FILES.get(stage, ())}
    return {
        "label": run.arm.label, "name": run.arm.spec.name, "title": run.arm.title, "variants": list(run.arm.variants),
        "settings": _readable(run.arm.settings), "dir": run.dir.name,
        "files": {k: str(p.relative_to(out_dir)) for k, p in files.items() if p.exists()},
        "error": None if run.error is None else dict(zip(("stage", "message", "exit_code"), run.error)),
        "seconds": run.seconds,
    }


def build_report(config: DebugABConfig, runs: Sequence[ArmRun], diff: list[dict[str, Any]],
                 results: Sequence[StageResult], out_dir: Path, figure: Path | None, seconds: float, *,
                 design: tuple[str, list[str]] | None = None, outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-ready report (NaN/inf become null)."""
    first, line = verdict(runs, results, design, outcome)
    run_names = [r.stage for r in results]
    stages = [{
        "stage": r.stage, "status": r.status, "seconds": r.seconds, "errors": r.errors,
        "diverged_taps": [t.name for t in r.diverged_taps], "taps": [t.to_dict() for t in r.taps],
    } for r in results]
    return json_safe({
        "format": REPORT_FORMAT, "format_version": 1, "ptycho_version": __version__,
        "arms": {r.arm.label: _arm_record(r, out_dir) for r in runs},
        "config_diff": _readable(diff),
        "stages_requested": list(config.stages),
        "stages_run": run_names,
        "stages_not_run": [s for s in config.stages if s not in run_names],
        "first_divergent_stage": first,
        "designed_difference": None if design is None else {"stage": design[0], "keys": design[1]},
        "outcome": None if not outcome or outcome.get("judged") is None else {
            **outcome["judged"], "replicates": outcome.get("replicates", {})},
        "verdict": line,
        "stages": stages,
        "files": {"report_json": "report.json", "report_md": "report.md",
                  "figure": None if figure is None else str(Path(figure).relative_to(out_dir))},
        "debug_ab": to_plain(config),
        "seconds": seconds,
    })


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: verdict, arms, config diff, a stage overview and one tap table per stage."""
    arms = report["arms"]
    a, b = arms["A"], arms["B"]
    lines = [f"# debug-ab: {a['title']} vs {b['title']}", "", f"**Verdict:** {report['verdict']}", ""]
    lines += ["| | A | B |", "|---|---|---|",
              f"| variant | `{a['name']}` | `{b['name']}` |",
              "| settings | " + " | ".join("<br>".join(f"`{k}={_cell(v)}`" for k, v in arm["settings"].items()) or "–"
                                          for arm in (a, b)) + " |",
              f"| folder | `{a['dir']}/` | `{b['dir']}/` |",
              "| failed at | " + " | ".join(arm["error"]["stage"] if arm["error"] else "–" for arm in (a, b)) + " |", ""]
    lines += ["## Config diff", ""]
    if report["config_diff"]:
        lines += ["| key | A | B |", "|---|---|---|"]
        lines += [f"| `{row['key']}` | {_cell(row['a'])} | {_cell(row['b'])} |" for row in report["config_diff"]]
    else:
        lines += ["The resolved configs are identical."]
    lines += ["", "## Stages", "", "| stage | status | diverged taps | A (s) | B (s) |", "|---|---|---|---|---|"]
    for st in report["stages"]:
        mark = "**" + st["status"] + "**" if st["status"] != "same" else st["status"]
        lines.append(f"| {st['stage']} | {mark} | {', '.join(st['diverged_taps']) or '–'} | "
                     f"{_secs(st['seconds'].get('A'))} | {_secs(st['seconds'].get('B'))} |")
    for name in report["stages_not_run"]:
        lines.append(f"| {name} | not run | – | – | – |")
    lines += outcome_markdown(report, format_value, _cell)
    for st in report["stages"]:
        lines += ["", f"### {st['stage']} — {st['status']}", ""]
        for label, message in st["errors"].items():
            lines += [f"- arm {label} failed: {message} (traceback in `{label}/error.txt`)"]
        if st["errors"]:
            lines.append("")
        if not st["taps"]:
            continue
        lines += ["| tap | A | B | abs Δ | rel Δ | rtol | atol | diverged | meaning |", "|---|---|---|---|---|---|---|---|---|"]
        for t in st["taps"]:
            flag = "**✗**" if t["diverged"] else ""
            lines.append(f"| `{t['name']}` | {_cell(t['a'])} | {_cell(t['b'])} | {_cell(t['abs_diff'])} | "
                         f"{_cell(t['rel_diff'])} | {_cell(t['rtol'])} | {_cell(t['atol'])} | {flag} | "
                         f"{_cell(t['description'])} |")
    if report["files"]["figure"]:
        lines += ["", "## Figure", "", f"![A and B side by side]({report['files']['figure']})"]
    lines += ["", f"_ptycho {report['ptycho_version']}, {report['seconds']:.1f} s_", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` (strict JSON) and ``report.md`` atomically."""
    text = json.dumps(report, indent=2, allow_nan=False, default=json_default)
    write_text_atomic(Path(out_dir) / "report.json", text + "\n")
    write_text_atomic(Path(out_dir) / "report.md", markdown(report))


# --------------------------------------------------------------------------- figure

def _limits(*images: np.ndarray | None) -> tuple[float, float]:
    values = [np.asarray(im)[np.isfinite(im)] for im in images if im is not None]
    values = [v for v in values if v.size]
    if not values:
        return 0.0, 1.0
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _pair_rows(runs: Sequence[ArmRun]) -> list[tuple[str, list[tuple[str, np.ndarray | None, str, str]]]]:
    """Rows of four panels ``(title, image, cmap, share-key)``: A left pair, B right pair."""
    rows = []

    def panels(make):
        out = []
        for run in runs:
            out += make(run)
        return out

    if all("truth" in r.artefacts for r in runs):
        rows.append(("truth", panels(lambda r: [
            (f"{r.arm.title}: truth amplitude + training scan", np.abs(r.artefacts["truth"]), "gray", "truth_amp"),
            (f"{r.arm.title}: truth phase (rad)", np.angle(r.artefacts["truth"]), "viridis", "truth_phase")])))
        rows.append(("probe", panels(lambda r: [
            (f"{r.arm.title}: probe |P| (√counts)", np.abs(r.artefacts["probe"]), "magma", "probe_" + r.arm.label),
            (f"{r.arm.title}: mean pattern log10(1+counts)", np.log10(1 + np.maximum(r.artefacts["mean_pattern"], 0)),
             "inferno", "pattern")])))
    if all("stitched" in r.artefacts for r in runs):
        def recon(r):
            im = r.artefacts["stitched"]
            return [(f"{r.arm.title}: reconstruction amplitude", np.where(im.support, np.abs(im.object), np.nan), "gray", "rec_amp"),
                    (f"{r.arm.title}: reconstruction phase (rad)", np.where(im.support, np.angle(im.object), np.nan), "viridis", "rec_phase")]
        rows.append(("reconstruction", panels(recon)))
    if all("comparison" in r.artefacts for r in runs):
        def error(r):
            c = r.artefacts["comparison"]
            amp = np.abs(c.recon_aligned) - np.abs(c.truth_aligned)
            phase = np.angle(c.recon_aligned * np.conj(c.truth_aligned))
            return [(f"{r.arm.title}: amplitude error", amp, "RdBu_r", "err_amp"),
                    (f"{r.arm.title}: phase error (rad)", phase, "RdBu_r", "err_phase")]
        rows.append(("error", panels(error)))
    return rows


def write_figure(path: Path, runs: Sequence[ArmRun], *, dpi: int = 100) -> Path | None:
    """Draw what the stages produced for both arms side by side; None if nothing ran."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ptycho.figures.common import save_figure

    rows = _pair_rows(runs)
    with_loss = any("history" in r.artefacts for r in runs)
    if not rows and not with_loss:
        return None
    mosaic = [[f"{i}_{j}" for j in range(4)] for i in range(len(rows))]
    if with_loss:
        mosaic.append(["loss"] * 4)
    fig = Figure(figsize=(15.0, 3.3 * len(mosaic)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplot_mosaic(mosaic)
    for i, (_, panels) in enumerate(rows):
        shared: dict[str, list[np.ndarray | None]] = {}
        for _, image, _, key in panels:
            shared.setdefault(key, []).append(image)
        for j, (title, image, cmap, key) in enumerate(panels):
            ax = axes[f"{i}_{j}"]
            lo, hi = _limits(*shared[key])
            if cmap == "RdBu_r":
                lim = max(abs(lo), abs(hi), 1e-12)
                lo, hi = -lim, lim
            im = ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if key == "truth_amp":
                run = runs[j // 2]
                ax.plot(run.artefacts["x"], run.artefacts["y"], ".", ms=2.5, color="tab:red", alpha=0.7)
    if with_loss:
        ax = axes["loss"]
        for run, colour in zip(runs, ("tab:blue", "tab:orange")):
            hist = run.artefacts.get("history") or {}
            name = run.artefacts.get("loss_name", "loss")
            for key, style in (("loss", "-"), ("val_loss", "--")):
                values = np.asarray([np.nan if v is None else v for v in hist.get(key, [])], dtype=float)
                if values.size and np.isfinite(values).any():
                    ax.plot(np.arange(1, values.size + 1), values, style, marker="o", ms=3, color=colour,
                            label=f"{run.arm.title} {'train' if key == 'loss' else 'validation'} ({name})")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=dpi)
