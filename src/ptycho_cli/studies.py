"""Console output of study commands (``ptycho dose``, ``ptycho sim-lines-4x``, …): a progress bar
over the pipeline stages of every arm, and the results table with a summary of what was written."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from ptycho_cli.console import print_summary, progress_bar, stdout


@contextlib.contextmanager
def study_progress(description: str, *, quiet: bool) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar on stderr with a detail column; yields ``progress(done, total, detail)``, the
    callback a study's ``run_study(..., progress=)`` takes. Silent if quiet."""
    with progress_bar(description, quiet=quiet, extra="{task.fields[detail]}", detail="") as update:
        yield lambda done, total, detail: update(done, total, detail=escape(detail))


def print_study(
    name: str,
    result: Any,
    table: tuple[Sequence[str], Sequence[Sequence[str]]],
    *,
    title: str,
    as_json: bool,
    quiet: bool,
    unit: str = "run",
) -> None:
    """Print what a study found and wrote.

    Parameters
    ----------
    name : str
        The command, the title of the summary.
    result : ptycho.workflows.study.StudyResult
        What the study wrote (``metrics_path``, ``markdown_path``, ``figures``, ``config_path``,
        ``out_dir``, ``errors``, ``seconds``).
    table : (header, body)
        The results table to print: column headers and text cells (the first column, the arm's
        name, is not wrapped), e.g. from :func:`ptycho.workflows.study.table_rows`.
    title : str
        The title of the results table.
    as_json : bool
        Print ``metrics.json`` instead (``--json``).
    quiet : bool
        Print nothing (``--quiet``).
    unit : str
        What the study calls an arm, for the ``failed …s`` line of the summary.
    """
    if as_json:
        print(json.dumps(json.loads(result.metrics_path.read_text(encoding="utf-8")), indent=2))
        return
    if not quiet:
        header, body = table
        grid = Table(title=title, title_justify="left")
        for i, column in enumerate(header):
            grid.add_column(column, overflow="fold", no_wrap=i == 0)
        for cells in body:
            grid.add_row(*cells)
        stdout().print(grid)
    rows = {"metrics": str(result.metrics_path), "table": str(result.markdown_path),
            **{f"figure ({k})": str(v) for k, v in result.figures.items()},
            "config": str(result.config_path), "runs": str(result.out_dir / "runs"),
            f"failed {unit}s": ", ".join(result.errors) or "none", "seconds": result.seconds}
    print_summary(name, rows, as_json=False, quiet=quiet)


def run_study_command(
    name: str,
    config: Any,
    out: Any,
    components: Any,
    *,
    plan: Callable[[Any], Any],
    run: Callable[..., Any],
    table: Callable[[Any], tuple[Sequence[str], Sequence[Sequence[str]]]],
    title: str,
    as_json: bool,
    quiet: bool,
    unit: str = "run",
) -> Any:
    """The body every study command shares: check the plan, run it with a progress bar, print it.

    ``plan(config)`` must raise on an invalid arm before anything runs; ``run(config, out,
    components, progress=)`` runs the study and returns its ``StudyResult``; ``table(rows)`` gives
    the terminal table (:func:`print_study`). Returns the result, whose ``exit_code`` the command
    exits with when every arm failed.
    """
    plan(config)
    with study_progress(name, quiet=quiet or as_json) as progress:
        result = run(config, out, components, progress=progress)
    print_study(name, result, table(result.rows), title=title, as_json=as_json, quiet=quiet, unit=unit)
    return result
