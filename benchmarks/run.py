"""The benchmark command: ``python -m benchmarks`` from the repository root.

Runs the selected sections one after another (measurements in fresh child processes, never two
at once), then writes ``<out>/<YYYY-MM-DD>-<hostname>.json`` and ``.md`` beside it (with a
``-quick`` suffix in quick mode, ``-custom`` with ``--size`` overrides) and prints the tables.
With ``--only``, sections of an earlier result file of the same day, host and mode that were not
re-run are kept, so one section can be re-measured on its own.

Exit code: 0 when every measurement ran (missed targets are results, not errors), 1 when a
measurement crashed (an ``error`` row), 2 for bad options.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.child import REPO
from benchmarks.context import Context
from benchmarks.machine import describe, git_state, load_average, measure_matmul
from benchmarks.report import DEFAULT_SECTIONS, ERROR, SECTIONS, Row, Section, print_rich, to_json, to_markdown
from benchmarks.sizes import FULL, QUICK, override

DEFAULT_OUT = REPO / "benchmarks" / "results"
MATMUL_SECTIONS = {"train", "infer", "quality", "regimes", "settings"}
"""Sections whose FLOP rates are compared with the machine's matmul rate, measured once per run."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, every code path (a few minutes)")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma list of sections to run, of {','.join(SECTIONS)} "
                             f"(default: {','.join(DEFAULT_SECTIONS)}; realistic, regimes and settings run only when named)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON and Markdown results")
    parser.add_argument("--work", type=Path, default=None, help="folder for datasets and models (default: a temporary folder)")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (datasets, models, patches)")
    parser.add_argument("--no-merge", action="store_true", help="with --only: do not keep other sections of today's file")
    parser.add_argument("--size", action="append", default=[], metavar="NAME=VALUE",
                        help="override one size of benchmarks/sizes.py, e.g. --size quality_epochs=10 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="do not print the tables")
    args = parser.parse_args(argv)
    try:
        args.sizes = override(QUICK if args.quick else FULL, args.size)
    except ValueError as exc:
        parser.error(str(exc))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown or not only:
        parser.error(f"--only: unknown section {unknown[0] if unknown else '(none)'}; choose from {','.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in only]
    return args


def section_from_json(name: str, data: dict[str, Any]) -> Section:
    rows = [Row(**r) for r in data.get("rows", [])]
    return Section(name, data.get("title", name), rows, data.get("raw", {}), list(data.get("notes", [])),
                   float(data.get("seconds", 0.0)), data.get("grid"))


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    console = Console(stderr=True)
    sizes = args.sizes
    started = time.perf_counter()
    now = dt.datetime.now()
    hostname = socket.gethostname()
    if args.size:  # never mix custom sizes into the standard result files
        sizes = dataclasses.replace(sizes, mode=f"{sizes.mode}-custom")
    stem = f"{now:%Y-%m-%d}-{hostname}" + ("" if sizes.mode == "full" else f"-{sizes.mode}")
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ptycho-bench-", dir=args.work))
    ctx = Context(sizes, work, out=out_dir, stem=stem)
    meta: dict[str, Any] = {
        "date": f"{now:%Y-%m-%d}", "started": now.isoformat(timespec="seconds"), "hostname": hostname,
        "mode": sizes.mode, "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "machine": describe(), "git": git_state(REPO), "sizes": sizes.as_dict(), "size_overrides": args.size,
        "sections_run": args.sections,
    }
    console.print(f"[bold]ptycho benchmarks[/] ({sizes.mode}) → {json_path}; work folder {work}")
    if MATMUL_SECTIONS & set(args.sections):
        console.print(f"[{dt.datetime.now():%H:%M:%S}] float32 matmul rates ({sizes.matmul_n}², best of {sizes.matmul_repeats}) …")
        ctx.matmul = meta["machine"]["matmul"] = measure_matmul(sizes.matmul_n, sizes.matmul_repeats)
    sections: dict[str, Section] = {}
    try:
        for name in args.sections:
            console.print(f"[{dt.datetime.now():%H:%M:%S}] [bold]{name}[/] …")
            t0 = time.perf_counter()
            module = importlib.import_module(f"benchmarks.sections.{name}")
            try:
                section = module.run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                section = Section(name, name)
                section.error(f"section {name}", f"{type(exc).__name__}: {exc}")
            section.seconds = time.perf_counter() - t0
            section.raw["finished"] = dt.datetime.now().isoformat(timespec="seconds")
            section.raw["load_after"] = load_average()
            section.raw["run"] = {"started": meta["started"], "command": meta["command"], **meta["git"]}
            sections[name] = section
            console.print(f"[{dt.datetime.now():%H:%M:%S}] {name} done in {section.seconds:.0f} s")
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    if set(args.sections) != set(SECTIONS) and not args.no_merge and json_path.is_file():
        try:
            previous = json.loads(json_path.read_text())
            if previous.get("mode") == sizes.mode:
                for name, data in previous.get("sections", {}).items():
                    if name in SECTIONS and name not in sections:
                        sections[name] = section_from_json(name, data)  # its raw["run"] says where it came from
        except (OSError, ValueError, TypeError) as exc:
            console.print(f"could not merge {json_path}: {exc}", style="yellow")
    ordered = [sections[n] for n in SECTIONS if n in sections]
    meta["machine"]["load_end"] = load_average()
    meta["seconds"] = time.perf_counter() - started
    json_path.write_text(to_json(meta, ordered), encoding="utf-8")
    md_path.write_text(to_markdown(meta, ordered), encoding="utf-8")
    if not args.quiet:
        screen = Console()
        print_rich(meta, ordered, screen if screen.is_terminal else Console(width=200))
    console.print(f"wrote {json_path} and {md_path.name} ({meta['seconds']:.0f} s)")
    return 1 if any(r.status == ERROR for s in ordered for r in s.rows) else 0
