"""``ptycho debug-ab``: run two pipeline variants side by side and report where they diverge.

Also the built-in plugin that registers the built-in A/B variants (hook ``ptycho_ab_variants``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option
ARM_FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
DEBUG_SECTION = "debug_ab"


def _slug(name: str) -> str:
    if name.endswith(ARM_FILE_SUFFIXES):
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-") or "arm"


def _pipeline_keys() -> set[str]:
    from ptycho.config.pipeline import PipelineConfig

    return set(PipelineConfig.model_fields)


def _split_sections(data: dict[str, Any], where: str, sections: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file's ``(pipeline part, debug_ab part)``. Other commands' ``sections`` (``export``,
    a plugin's) are skipped; unknown top-level keys are an error."""
    from ptycho.errors import ConfigError

    keys = _pipeline_keys()
    others = set(sections)
    pipeline: dict[str, Any] = {}
    debug: dict[str, Any] = {}
    for key, value in data.items():
        if key == DEBUG_SECTION:
            debug = dict(value or {})
        elif key in keys:
            pipeline[key] = value
        elif key not in others:
            raise ConfigError(f"{where}: unknown section '{key}'; debug-ab reads {', '.join(sorted(keys))} and {DEBUG_SECTION}")
    return pipeline, debug


def _dotted_overrides(items: list[str], option: str) -> dict[str, Any]:
    """``--a-set k=v`` items as ``{dotted key: parsed value}`` over the pipeline config."""
    from ptycho.config.merge import flatten
    from ptycho.errors import ConfigError
    from ptycho_cli.config_io import parse_set

    keys = _pipeline_keys()
    out: dict[str, Any] = {}
    for item in items:
        parsed = flatten(parse_set(item, ""))
        for key, value in parsed.items():
            if key.split(".", 1)[0] not in keys:
                raise ConfigError(f"{option} {item!r}: unknown key '{key}'; use a pipeline key such as "
                                  f"simulate.nphotons, train.loss (top level: {', '.join(sorted(keys))})")
            out[key] = value
    return out


def _arm_spec(label: str, name: str, sets: list[str], sections: Iterable[str]) -> Any:
    """An arm from a variant name (``grid``, ``gs2+mae``, ``base``) or a YAML/TOML file of pipeline settings."""
    from ptycho.debug.variants import ArmSpec
    from ptycho.errors import ConfigError
    from ptycho_cli.config_io import read_config_file

    overrides = _dotted_overrides(sets, f"--{label.lower()}-set")
    if name.endswith(ARM_FILE_SUFFIXES):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"arm {label}: variant file {name} not found")
        pipeline, debug = _split_sections(read_config_file(path), f"arm {label} ({name})", sections)
        if debug:
            raise ConfigError(f"arm {label} ({name}): a variant file holds pipeline settings only; "
                              f"put the {DEBUG_SECTION} section in --config")
        return ArmSpec(label, name, overrides, pipeline, variants=())
    return ArmSpec(label, name, overrides)


def debug_ab_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(
        metavar="A", show_default=False,
        help="Arm A: a variant (grid, gs2, dose-low, …), variants joined with + (gs2+mae), 'base' "
             "(no variant), or a YAML/TOML file of pipeline settings.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Arm B, like A.", show_default=False)],
    out: Annotated[Optional[Path], Opt("--out", "-o", help="Report folder (default: debug-ab-A-vs-B/).",
                                       show_default=False)] = None,
    stages: Annotated[Optional[str], Opt("--stages", show_default=False,
                                         help="Last stage to run: simulate, group, train, infer, stitch or "
                                              "evaluate (default), or a comma list.")] = None,
    epochs: Annotated[Optional[int], Opt("--epochs", help="Training epochs of both arms (default 5).",
                                         show_default=False)] = None,
    n_images: Annotated[Optional[int], Opt("--n-images", show_default=False,
                                           help="Training scan positions of both arms (default 512; the test "
                                                "scan has half).")] = None,
    a_set: Annotated[Optional[list[str]], Opt("--a-set", show_default=False,
                                              help="Pipeline setting for arm A only: dotted.key=value "
                                                   "(repeatable).")] = None,
    b_set: Annotated[Optional[list[str]], Opt("--b-set", show_default=False,
                                              help="Pipeline setting for arm B only (repeatable).")] = None,
    stop_on_divergence: Annotated[bool, Opt("--stop-on-divergence",
                                            help="Stop after the first stage whose taps diverge.")] = False,
    no_figure: Annotated[bool, Opt("--no-figure", help="Skip the side-by-side figure.")] = False,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Run the pipeline for two variants A and B side by side and report where they first diverge.

    Both arms use the same seeds and settings except the variants' (and --a-set/--b-set). Stage by
    stage (simulate → group → train → infer → stitch → evaluate) each arm runs in OUT/A and OUT/B,
    taps (probe energy, overlap, counts, group offsets, scales, losses, NaN/Inf counts, output
    statistics, metrics) are compared within tolerance, and OUT gets report.json, report.md and
    figure.png. Exit code 0 whenever the report was written, diverged or not — unless both arms
    failed at the same stage (a problem of the shared pipeline): then that failure's exit code.

    Built-in variants: grid, nongrid, gs1, gs2, nll, mae, probe-ideal, probe-file, dose-high,
    dose-low (plugins add more). --set takes pipeline keys (simulate.*, train.*, infer.*, stitch.*,
    evaluate.*, test_scan_seed, test_n_images) for both arms, or debug_ab.* (stages, epochs,
    n_images, N, object_size, n_filters_scale, tolerances.STAGE.TAP.rtol|atol).

    Examples:

      ptycho debug-ab grid nongrid

      ptycho debug-ab dose-high dose-low --stages simulate

      ptycho debug-ab nll mae --epochs 10 --out nll-vs-mae/

      ptycho debug-ab base base --b-set simulate.probe.diameter_frac=0.3

      ptycho debug-ab gs1 gs2+mae --set simulate.object.kind=siemens

      ptycho debug-ab grid nongrid --set 'debug_ab.tolerances.evaluate.*.atol=0.05'
    """
    from ptycho.config.merge import deep_merge, dotted_to_nested
    from ptycho.config.pipeline import DebugABConfig
    from ptycho_cli.config_io import read_config_file, resolve_config
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["debug-ab"]):
        sections = ctx.obj.config_sections()
        base: dict[str, Any] = {}
        debug_files: dict[str, Any] = {}
        for path in config or ():
            pipeline, debug = _split_sections(read_config_file(Path(path)), f"--config {path}", sections)
            base = deep_merge(base, pipeline)
            debug_files = deep_merge(debug_files, debug)
        debug_sets = [s for s in set_ or () if s.strip().startswith(DEBUG_SECTION + ".")]
        for key, value in _dotted_overrides([s for s in set_ or () if s not in debug_sets], "--set").items():
            base = deep_merge(base, dotted_to_nested(key, value))
        flags = {"stages": stages, "epochs": epochs, "n_images": n_images,
                 "stop_on_divergence": True if stop_on_divergence else None, "figure": False if no_figure else None}
        cfg = resolve_config(DebugABConfig, DEBUG_SECTION, sets=debug_sets, flags=flags, base=debug_files)
        for key, value in (("train.epochs", epochs), ("simulate.scan.n_images", n_images)):
            if value is not None:  # typed flags beat --config and --set (docs/cli.md#configuration)
                base = deep_merge(base, dotted_to_nested(key, value))
        arm_a, arm_b = _arm_spec("A", a, a_set or [], sections), _arm_spec("B", b, b_set or [], sections)
        out_dir = out if out is not None else Path(f"debug-ab-{_slug(a)}-vs-{_slug(b)}")
        components = ctx.obj.components()

        from ptycho.workflows.debug_ab import debug_ab, resolve_arms

        resolve_arms(cfg, arm_a, arm_b, components, base)  # fail on a bad variant before importing TensorFlow
        with StageProgress(quiet=quiet or as_json) as progress:
            result = debug_ab(cfg, arm_a, arm_b, out_dir, components, base=base, on_event=progress.on_event)
        print_result(result, as_json=as_json, quiet=quiet, verbose=verbose)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --------------------------------------------------------------------------- terminal output

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


def _unwrap(doc: str) -> str:
    """The docstring with each prose paragraph on one line (rich help keeps line breaks, so
    source-wrapped lines would break twice); indented example lines stay as they are."""
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("  ") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


@hookimpl
def ptycho_commands():
    return [CommandSpec("debug-ab", debug_ab_command, help=_unwrap(debug_ab_command.__doc__ or ""))]


@hookimpl
def ptycho_ab_variants():
    from ptycho.builtins import builtin_variant_specs

    return builtin_variant_specs()
