"""Result rows, targets and the three renderings of a run: JSON, Markdown and a rich table.

Every row carries its target, the measured value and a status: ``pass``, ``FAIL`` (a target
missed, said plainly), ``info`` (no target: a baseline, a ratio or a reference), ``n/a`` (the
value could not be measured, with the reason in the note) or ``error`` (the measurement crashed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PASS, FAIL, INFO, NA, ERROR = "pass", "FAIL", "info", "n/a", "error"
SCHEMA = "ptycho-benchmarks/1"
SECTIONS = ("sim", "train", "cluster", "infer", "quality", "sweep", "realistic", "regimes", "settings")
DEFAULT_SECTIONS = ("sim", "train", "cluster", "infer", "quality", "sweep")
"""What a run without ``--only`` measures: the regime map takes hours, the realistic scenario trains at
N=128, and the settings comparison repeats train and infer over every variant, so these run only
when named."""


@dataclass(frozen=True)
class Target:
    """``value op threshold``; ``op`` is ``>=``, ``<=`` or ``within`` (``|value − threshold| ≤ tol``,
    with ``relative`` meaning ``tol`` is a fraction of ``threshold``)."""

    op: str
    threshold: float
    tol: float = 0.0
    relative: bool = False
    label: str | None = None

    def check(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return FAIL
        if self.op == ">=":
            return PASS if value >= self.threshold else FAIL
        if self.op == "<=":
            return PASS if value <= self.threshold else FAIL
        if self.op == "<":
            return PASS if value < self.threshold else FAIL
        if self.op == "within":
            tol = self.tol * abs(self.threshold) if self.relative else self.tol
            return PASS if abs(value - self.threshold) <= tol else FAIL
        raise ValueError(f"unknown target operator {self.op!r}")

    def text(self) -> str:
        if self.label:
            return self.label
        if self.op == "within":
            tol = f"{self.tol:.0%}" if self.relative else f"{self.tol:g}"
            return f"{self.threshold:g} ± {tol}"
        symbol = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        t = self.threshold
        return f"{symbol} {int(t):,}" if float(t).is_integer() else f"{symbol} {t:g}"


@dataclass
class Row:
    """One line of the report."""

    metric: str
    measured: float | None
    unit: str = ""
    config: str = ""
    target: str = "—"
    status: str = INFO
    reference: str = ""
    note: str = ""


def row(metric: str, measured: float | None, *, unit: str = "", config: str = "", target: Target | str | None = None,
        reference: str = "", note: str = "", status: str | None = None) -> Row:
    """A row whose status follows from its target (``info`` without one); a missing value is
    ``n/a`` unless it has a target, which it then fails. A target given as text is shown only:
    the caller sets ``status``."""
    value = None if measured is None or not math.isfinite(float(measured)) else float(measured)
    if measured is not None and value is None:
        note = f"{note}; measured {measured}".strip("; ")
    if status is None:
        if isinstance(target, Target):
            status = target.check(value)
        else:
            status = INFO if value is not None else NA
    text = target.text() if isinstance(target, Target) else (target or "—")
    return Row(metric, value, unit, config, text, status, reference, note)


@dataclass
class Section:
    """The outcome of one benchmark section."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    grid: dict[str, Any] | None = None  # optional extra table: {"columns": [...], "rows": {name: [cells]}}

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def error(self, what: str, exc: BaseException | str) -> None:
        """Record a crashed measurement as an ``error`` row and keep going."""
        message = str(exc).strip().splitlines()
        self.rows.append(Row(what, None, status=ERROR, note=(message[-1] if message else repr(exc))[:300]))
        self.raw.setdefault("errors", []).append({"what": what, "error": str(exc)[-4000:]})


def fmt(value: float | None, unit: str = "") -> str:
    """A number for humans: 3–4 significant digits, thousands separators for large values."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    a = abs(value)
    if a >= 1e5 or (a < 1e-3 and a != 0):
        text = f"{value:.3g}"
    elif a >= 1000:
        text = f"{value:,.0f}"
    elif a >= 100:
        text = f"{value:.1f}"
    elif a >= 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:.4g}" if a < 1 else f"{value:.3f}"
    return f"{text} {unit}".strip()


def json_clean(value: Any) -> Any:
    """``value`` with NaN/±inf replaced by None and tuples/NumPy types made plain (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return json_clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def summary(sections: list[Section]) -> dict[str, int]:
    counts = {PASS: 0, FAIL: 0, INFO: 0, NA: 0, ERROR: 0}
    for section in sections:
        for r in section.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def to_json(meta: dict[str, Any], sections: list[Section]) -> str:
    doc = {
        "schema": SCHEMA,
        **meta,
        "summary": summary(sections),
        "sections": {s.name: {"title": s.title, "seconds": s.seconds, "rows": [asdict(r) for r in s.rows],
                              "notes": s.notes, "grid": s.grid, "raw": s.raw} for s in sections},
    }
    return json.dumps(json_clean(doc), indent=2, allow_nan=False) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _status_md(status: str) -> str:
    return {PASS: "✅ pass", FAIL: "❌ **FAIL**", INFO: "info", NA: "n/a", ERROR: "⚠️ **error**"}.get(status, status)


def _provenance(section: Section) -> str:
    """`` · measured in the run started … (`command`, commit …)`` from ``raw["run"]``, when known:
    a result file merges sections measured by different runs."""
    run = section.raw.get("run")
    if not run:
        return ""
    commit = f"{run.get('commit', '?')}{' + uncommitted changes' if run.get('dirty') else ''}"
    return f" · measured in the run started {run.get('started', '?')} (`{run.get('command', '?')}`, commit `{commit}`)"


def to_markdown(meta: dict[str, Any], sections: list[Section]) -> str:
    machine = meta.get("machine", {})
    counts = summary(sections)
    lines = [
        f"# ptycho benchmarks — {meta.get('date')} on {meta.get('hostname')} ({meta.get('mode')} mode)",
        "",
        f"Latest run: `{meta.get('command')}` · ptycho {machine.get('versions', {}).get('ptycho', '?')} "
        f"at commit `{meta.get('git', {}).get('commit', '?')}`{' (uncommitted changes)' if meta.get('git', {}).get('dirty') else ''} · "
        f"total {meta.get('seconds', 0):.0f} s"
        + (" (with sections merged in from earlier runs of the day; each says which run measured it)"
           if any(s.raw.get("run", {}).get("started", meta.get("started")) != meta.get("started") for s in sections)
           else ""),
        "",
        f"**Summary:** {counts[PASS]} pass, {counts[FAIL]} FAIL, {counts[ERROR]} error, {counts[NA]} n/a, {counts[INFO]} info rows.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    for key, value in machine_lines(machine):
        lines.append(f"| {key} | {_md_escape(value)} |")
    lines.append("")
    lines.append("Speed numbers are only comparable within one run: each section measures its baseline in "
                 "the same run and reports the ratio. Load average is shown because the machine may be shared.")
    for s in sections:
        lines += ["", f"## {s.name}: {s.title}", "", f"_{s.seconds:.0f} s{_provenance(s)}_", ""]
        lines.append("| metric | config | target | measured | earlier impl. | status | note |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in s.rows:
            lines.append("| " + " | ".join(_md_escape(v) for v in (
                r.metric, r.config, r.target, fmt(r.measured, r.unit), r.reference or "", _status_md(r.status), r.note)) + " |")
        if s.grid:
            cols = s.grid["columns"]
            lines += ["", f"**{s.grid.get('title', 'grid')}**", "", "| " + " | ".join(["", *cols]) + " |",
                      "|" + "---|" * (len(cols) + 1)]
            for name, cells in s.grid["rows"].items():
                lines.append("| " + " | ".join(_md_escape(c) for c in [name, *cells]) + " |")
        if s.notes:
            lines.append("")
            lines += [f"- {_md_escape(n)}" for n in s.notes]
    return "\n".join(lines) + "\n"


def machine_lines(machine: dict[str, Any]) -> list[tuple[str, str]]:
    versions = machine.get("versions", {})
    out = [
        ("CPU", f"{machine.get('cpu_model', '?')} — {machine.get('cpus_available', '?')} cores available "
                f"({machine.get('cpus_logical', '?')} logical)"),
        ("RAM", f"{machine.get('ram_gb', 0):.1f} GB"),
        ("OS", machine.get("platform", "?")),
        ("Python / TensorFlow / Keras / NumPy", " / ".join(str(versions.get(k, "?")) for k in
                                                           ("python", "tensorflow", "keras", "numpy"))),
        ("h5py / SciPy", " / ".join(str(versions.get(k, "?")) for k in ("h5py", "scipy"))),
        ("load average (start → end)", f"{machine.get('load_start', '?')} → {machine.get('load_end', '?')}"),
    ]
    matmul = machine.get("matmul")
    if matmul:
        out.append(("float32 matmul rate (measured)", matmul_text(matmul)))
    return out


def matmul_text(matmul: dict[str, Any]) -> str:
    """``TensorFlow X GFLOP/s (n², threads …); NumPy Y GFLOP/s (…)`` of a machine record's ``matmul``."""
    if "error" in matmul:
        return f"not measured: {matmul['error']}"
    parts = []
    for name, key in (("TensorFlow", "tensorflow"), ("NumPy", "numpy")):
        r = matmul.get(key) or {}
        if r.get("gflops"):
            parts.append(f"{name} {r['gflops']:.1f} GFLOP/s ({r['n']}², best of {r['repeats']}; "
                         f"{r['gflops_half_size']:.1f} at {r['n'] // 2}²; {r['threads']})")
    return "; ".join(parts) or "—"


def print_rich(meta: dict[str, Any], sections: list[Section], console: Any = None) -> None:
    """Print the tables with rich (colours for pass/FAIL)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    colours = {PASS: "green", FAIL: "bold red", INFO: "dim", NA: "yellow", ERROR: "bold magenta"}
    machine = Table(title=f"ptycho benchmarks — {meta.get('date')} {meta.get('hostname')} ({meta.get('mode')})",
                    show_header=False)
    for key, value in machine_lines(meta.get("machine", {})):
        machine.add_row(key, value)
    console.print(machine)
    for s in sections:
        table = Table(title=f"{s.name}: {s.title} ({s.seconds:.0f} s)", title_justify="left")
        for col in ("metric", "config", "target", "measured", "earlier", "status", "note"):
            table.add_column(col, overflow="fold", max_width=48 if col == "note" else None)
        for r in s.rows:
            table.add_row(r.metric, r.config, r.target, fmt(r.measured, r.unit), r.reference,
                          Text(r.status, style=colours.get(r.status, "")), r.note)
        console.print(table)
        if s.grid:
            grid = Table(title=s.grid.get("title", "grid"), title_justify="left")
            grid.add_column("")
            for col in s.grid["columns"]:
                grid.add_column(col)
            for name, cells in s.grid["rows"].items():
                grid.add_row(name, *(Text(c, style="green" if c.startswith(PASS) else "bold red" if c.startswith(FAIL)
                                          else "") for c in cells))
            console.print(grid)
        for n in s.notes:
            console.print(f"  • {n}", style="dim")
    counts = summary(sections)
    console.print(f"[green]{counts[PASS]} pass[/], [bold red]{counts[FAIL]} FAIL[/], "
                  f"[bold magenta]{counts[ERROR]} error[/], {counts[NA]} n/a, {counts[INFO]} info")
