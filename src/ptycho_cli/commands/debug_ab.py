"""``ptycho debug-ab``: run two pipeline variants side by side and report where they diverge.

Also the built-in plugin that registers the built-in A/B variants (hook ``ptycho_ab_variants``).
Reading the arms and shared settings: :mod:`ptycho_cli.debug_ab_inputs`; printing:
:mod:`ptycho_cli.debug_ab_output`; the run itself: :mod:`ptycho.workflows.debug_ab`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


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
    replicates: Annotated[Optional[int], Opt("--replicates", show_default=False,
                                             help="For arms that differ by design, rerun each this many times with "
                                                  "other seeds to judge the outcome against run-to-run noise "
                                                  "(default 1; 0: off; only when evaluate runs).")] = None,
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

    Arms that differ by design diverge from the first stage their settings feed (expected, and
    said so). When evaluate runs, each such arm is run once more with other seeds (OUT/A-seed2,
    OUT/B-seed2; --replicates) and the verdict says whether the final scores differ beyond that
    run-to-run spread.

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
    from ptycho_cli.debug_ab_inputs import read_inputs
    from ptycho_cli.debug_ab_output import StageProgress, print_result
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["debug-ab"]):
        flags = {"stages": stages, "epochs": epochs, "n_images": n_images,
                 "stop_on_divergence": True if stop_on_divergence else None, "figure": False if no_figure else None,
                 "replicates": replicates}
        inputs = read_inputs(a, b, a_sets=a_set or [], b_sets=b_set or [], out=out, files=config or (),
                             sets=set_ or (), flags=flags, sections=ctx.obj.config_sections())
        components = ctx.obj.components()

        from ptycho.workflows.debug_ab import debug_ab, resolve_arms

        # fail on a bad variant before importing TensorFlow
        resolve_arms(inputs.config, inputs.arm_a, inputs.arm_b, components, inputs.base)
        with StageProgress(quiet=quiet or as_json) as progress:
            result = debug_ab(inputs.config, inputs.arm_a, inputs.arm_b, inputs.out, components, base=inputs.base,
                              on_event=progress.on_event)
        print_result(result, as_json=as_json, quiet=quiet, verbose=verbose)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


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
