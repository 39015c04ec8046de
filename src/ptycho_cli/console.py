"""Console output: rich progress bars and summaries on stderr/stdout, quiet-aware."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

ProgressCallback = Callable[[int, int], None]


def stdout() -> Console:
    return Console()


def stderr() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, *, quiet: bool, extra: str = "", console: Console | None = None,
                 **fields: Any) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(done, total, **fields)``. Silent if quiet.

    The bar appears at the first update, so an error found before any work prints no empty bar.
    ``extra`` is a column template using ``{task.fields[...]}``; ``fields`` are their initial values.
    Lines printed on the same ``console`` while the bar runs appear above it.
    """
    if quiet:
        yield lambda done, total, **fields: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    if extra:
        columns.append(TextColumn(extra))
    bar = Progress(*columns, console=console or stderr(), transient=False)
    task = bar.add_task(description, total=None, **fields)

    def update(done: int, total: int, **fields: Any) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, **fields)

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


class ProgressLog:
    """One line per finished stage or epoch on stderr (kept in a log file, where a progress bar
    keeps only its last state), and a status line while a stage without steps runs."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.console = stderr()

    def line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)


def print_summary(title: str, rows: Mapping[str, Any], *, as_json: bool, quiet: bool) -> None:
    """A two-column table (or JSON with ``--json``) of a command's results."""
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if quiet:  # the final result only: the first row names the main output
        key, value = next(iter(rows.items()), ("", ""))
        print(f"{title}: {_fmt(value)}")
        return
    table = Table(title=title, show_header=False, title_justify="left", expand=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # never truncate a path
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    stdout().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
