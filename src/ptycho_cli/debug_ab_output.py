"""Terminal output of ``ptycho debug-ab``: live progress per arm and stage, and the result tables."""

from __future__ import annotations

from typing import Any


class StageProgress:
    """Rich progress on stderr: one line per arm and stage (bar, count, time, detail)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.tasks: dict[tuple[str, str], Any] = {}
        self.bar: Any = None

    def __enter__(self) -> "StageProgress":
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from ptycho_cli.console import stderr

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=stderr())
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def on_event(self, event: Any) -> None:
        if self.bar is None:
            return
        from rich.markup import escape

        key = (event.arm, event.stage)
        name = escape(f"{event.title} · {event.stage}")
        if event.kind == "start":
            self.tasks[key] = self.bar.add_task(name, total=None, detail="")
            return
        task = self.tasks.get(key)
        if task is None:
            return
        if event.kind == "progress":
            self.bar.update(task, completed=event.done, total=event.total, detail=escape(event.detail))
        elif event.kind == "done":
            total = self.bar.tasks[task].total or 1
            self.bar.update(task, completed=total, total=total, description=f"[green]✓[/] {name}",
                            detail=f"{event.seconds:.1f} s")
        elif event.kind == "failed":
            self.bar.update(task, description=f"[red]✗[/] {name}", detail=escape(event.detail[:80]))


def _cell(value: Any) -> str:
    """A value as terminal text, safe from rich markup."""
    from rich.markup import escape

    from ptycho.workflows.debug_ab_report import format_value

    return escape(format_value(value))


def print_result(result: Any, *, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Config diff, stage overview, key (or, with --verbose, all) taps, verdict and files."""
    import json

    from rich.table import Table

    from ptycho.debug.taps import KEY_TAPS
    from ptycho_cli.console import stdout

    report = result.report
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console = stdout()
    first = report["first_divergent_stage"]
    colour = "green" if first is None and not any(s["status"] == "failed" for s in report["stages"]) else "red"
    if not quiet:
        a, b = report["arms"]["A"], report["arms"]["B"]
        diff = Table(title="config diff", title_justify="left")
        for col in ("key", a["title"], b["title"]):
            diff.add_column(col, overflow="fold")
        for row in report["config_diff"]:
            diff.add_row(_cell(row["key"]), _cell(row["a"]), _cell(row["b"]))
        if not report["config_diff"]:
            diff.add_row("(identical)", "", "")
        console.print(diff)
        stages = Table(title="stages", title_justify="left")
        for col in ("stage", "status", "diverged taps", "A s", "B s"):
            stages.add_column(col, overflow="fold")
        for st in report["stages"]:
            style = "green" if st["status"] == "same" else "red"
            seconds = [f"{st['seconds'][k]:.1f}" if st["seconds"].get(k) is not None else "–" for k in ("A", "B")]
            notes = [f"arm {k} failed: {_cell(v)}" for k, v in st["errors"].items()] + st["diverged_taps"]
            stages.add_row(st["stage"], f"[{style}]{st['status']}[/]", ", ".join(notes) or "–", *seconds)
        for name in report["stages_not_run"]:
            stages.add_row(name, "[dim]not run[/]", "", "", "")
        console.print(stages)
        taps = Table(title="taps" if verbose else "key taps (all in report.md; --verbose here)", title_justify="left")
        for col in ("tap", "A", "B", "rel Δ", ""):
            taps.add_column(col, overflow="fold")
        for st in report["stages"]:
            shown = {t["name"] for t in st["taps"]} if verbose else set(KEY_TAPS.get(st["stage"], ()))
            if st["stage"] == first:
                shown |= set(st["diverged_taps"])
            for t in st["taps"]:
                if t["name"] in shown:
                    taps.add_row(f"{st['stage']}.{t['name']}", _cell(t["a"]), _cell(t["b"]), _cell(t["rel_diff"]),
                                 "[red]✗ diverged[/]" if t["diverged"] else "")
        console.print(taps)
    console.print(f"[bold {colour}]{_cell(report['verdict'])}[/]")
    if not quiet:
        files = [result.report_path, result.markdown_path] + ([result.figure_path] if result.figure_path else [])
        console.print("report: " + ", ".join(str(p) for p in files), soft_wrap=True)
