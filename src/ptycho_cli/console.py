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
def progress_bar(description: str, *, quiet: bool, extra: str = "", **fields: Any) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(done, total, **fields)``. Silent if quiet.

    ``extra`` is a column template using ``{task.fields[...]}``; ``fields`` are their initial values.
    """
    if quiet:
        yield lambda done, total, **fields: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    if extra:
        columns.append(TextColumn(extra))
    with Progress(*columns, console=stderr(), transient=False) as bar:
        task = bar.add_task(description, total=None, **fields)

        def update(done: int, total: int, **fields: Any) -> None:
            bar.update(task, completed=done, total=total, **fields)

        yield update


def print_summary(title: str, rows: Mapping[str, Any], *, as_json: bool, quiet: bool) -> None:
    """A two-column table (or JSON with ``--json``) of a command's results."""
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if quiet:
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
