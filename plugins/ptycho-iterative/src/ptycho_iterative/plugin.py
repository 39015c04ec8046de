"""The ``ptycho iterative`` command (entry point ``iterative`` in the ``ptycho`` group).

Only Typer and the ``ptycho_cli`` plugin API are imported here; datasets, NumPy engines and
figures are imported inside the command body so ``ptycho --help`` stays light (the command
itself does not use TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ptycho_cli.api import (
    CommandSpec,
    ConfigFiles,
    Json,
    Quiet,
    SetItems,
    Verbose,
    hookimpl,
)

if TYPE_CHECKING:
    from ptycho.config.iterative import IterativeConfig
    from ptycho_iterative.workflow import IterativeRun

Opt = typer.Option
SECTION = "iterative"
FLAGS = {
    f"{SECTION}.{field}": flag for field, flag in (
        ("engine", "--engine"), ("iterations", "--iterations"), ("alpha", "--alpha"), ("beta", "--beta"),
        ("batch_size", "--batch-size"), ("seed", "--seed"), ("probe_update", "--probe-update"),
        ("crop_to_scan", "--crop-to-scan"), ("regulariser", "--regulariser"),
        ("regulariser_weight", "--regulariser-weight"),
        ("crop_to_scan", "--crop-to-scan"), ("refine_positions", "--refine-positions"),
        ("probe_modes", "--probe-modes"),
    )
}
"""Config field → flag, so the core's errors print with this command's flags (``guard``)."""


def iterative_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="Dataset (.h5/.npz) with diffraction, positions and probe.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Output object file: .npz or .h5 (the `ptycho stitch` format).")],
    engine: Annotated[Optional[str], Opt("--engine", "-e", help="rpie (default), epie, or ml (Poisson maximum likelihood with a regulariser).", show_default=False)] = None,
    iterations: Annotated[Optional[int], Opt("--iterations", "-n", help="Passes over every position (default 50).", show_default=False)] = None,
    probe_update: Annotated[bool, Opt("--probe-update", help="Also refine the probe (its power stays at the dataset's).")] = False,
    probe: Annotated[Optional[Path], Opt("--probe", metavar="FILE", show_default=False,
                                         help="Start from this probe instead of the dataset's (scaled to its photon gauge).")] = None,
    alpha: Annotated[Optional[float], Opt("--alpha", help="Object: rPIE / ml preconditioner blend in (0, 1] (default 0.1) / ePIE step (default 1).", show_default=False)] = None,
    beta: Annotated[Optional[float], Opt("--beta", help="Probe: rPIE / ml blend in (0, 1] (default 0.5) / ePIE step (default 1).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], Opt("--batch-size", "-b", help="Positions updated together (default 8); ml: patterns held in memory at once (default 64).", show_default=False)] = None,
    regulariser: Annotated[Optional[str], Opt("--regulariser", help="ml only: tv (default, smoothed total variation), gradient (quadratic) or none.", show_default=False)] = None,
    regulariser_weight: Annotated[Optional[float], Opt("--regulariser-weight", help="ml only: weight of the regulariser in counts (default: 0.5·√(mean illumination per pixel), dose-aware).", show_default=False)] = None,
    probe_modes: Annotated[Optional[int], Opt("--probe-modes", help="Incoherent probe modes to reconstruct (default: the probe's): fewer keep the strongest, more add derived modes; refine them with --probe-update.", show_default=False)] = None,
    refine_positions: Annotated[bool, Opt("--refine-positions", help="Refine every position by a sub-pixel offset (gradient-based, bounded by iterative.position_max_shift_px = 2, zero mean; from iteration iterative.position_start = 10); the object file records them.")] = False,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed of the random minibatch order (default 0).", show_default=False)] = None,
    crop_to_scan: Annotated[bool, Opt("--crop-to-scan", help="Write only the supported (illuminated) bounding box, not the full object frame.")] = False,
    no_figures: Annotated[bool, Opt("--no-figures", help="Skip the amplitude and phase PNGs.")] = False,
    mask: Annotated[Optional[Path], Opt("--mask", help="Valid-pixel mask (True = measured; .npy, or .npz/.h5 key 'mask') "
                                        "replacing the dataset's: masked pixels keep the predicted modulus.")] = None,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Reconstruct the object with ePIE, rPIE or maximum likelihood (iterative baselines), the dataset's probe known.

    rPIE / ePIE: minibatch updates; ml: the Poisson likelihood of the counts plus a regulariser, minimised by preconditioned conjugate gradients (robust at low dose). All on ptycho's conventions (bilinear windows, unitary FFT, counts); the object starts at ones on the dataset's object frame. Writes OBJECT (.npz/.h5, scored by `ptycho evaluate`), OBJECT.config.yaml, amplitude/phase PNGs, OBJECT.probe.npz with --probe-update (every mode), and with --refine-positions the refined positions in OBJECT (used by `ptycho export-ptychodus`) and OBJECT.refinement.png.

    Examples:

      ptycho iterative data.h5 --out object.npz

      ptycho iterative data.h5 --engine epie --iterations 100 --probe-update --out object.h5

      ptycho iterative data.h5 --out object.npz --batch-size 64 --seed 1 --json

      ptycho iterative lowdose.h5 --engine ml --iterations 100 --out object.npz
      ptycho iterative measured.h5 --probe-update --probe-modes 2 --refine-positions --iterations 200 --out object.npz

      ptycho iterative measured.h5 --probe guess.probe.npz --probe-update --iterations 100 --out object.npz
    """
    from ptycho_cli.api import guard, print_summary, resolve_config

    with guard(verbose, FLAGS):
        flags = {
            "engine": engine, "iterations": iterations, "alpha": alpha, "beta": beta, "batch_size": batch_size,
            "seed": seed, "probe_update": True if probe_update else None, "crop_to_scan": True if crop_to_scan else None,
            "regulariser": regulariser, "regulariser_weight": regulariser_weight,
            "probe_modes": probe_modes, "refine_positions": True if refine_positions else None,
        }
        from ptycho.config.iterative import IterativeConfig

        # defaults < --config files (their iterative: section, or flat) < --set < flags
        cfg = resolve_config(IterativeConfig, SECTION, files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        out = _checked_output(out, dataset, probe=probe, mask=mask)
        run = _reconstruct_with_progress(cfg, dataset, out, probe=probe, mask=mask, figures=not no_figures,
                                         quiet=quiet or as_json)
        print_summary("iterative", _summary_rows(run, cfg, with_errors=as_json), as_json=as_json, quiet=quiet)


def _checked_output(out: Path, dataset: Path, *, probe: Path | None, mask: Path | None) -> Path:
    """``out`` as an object file this run may write: a known suffix, a writable place, and neither
    it nor the files written beside it an input (``ConfigError`` otherwise, before any work)."""
    from ptycho.io.datasets import dataset_inputs
    from ptycho.io.objects import object_format
    from ptycho.io.paths import check_output_file, refuse_overwriting_inputs
    from ptycho.workflows.stitch import stitch_outputs
    from ptycho_iterative.workflow import output_paths

    object_format(out)
    out = check_output_file(out)
    refuse_overwriting_inputs([*stitch_outputs(out), *output_paths(out).values()],
                              {**dataset_inputs(dataset), "probe file": probe, "mask file": mask}, "iterative")
    return out


def _reconstruct_with_progress(cfg: IterativeConfig, dataset: Path, out: Path, *, probe: Path | None,
                               mask: Path | None, figures: bool, quiet: bool) -> IterativeRun:
    """Reconstruct ``dataset`` (its probe replaced by ``probe``'s, its mask by ``mask``'s) with
    :func:`~ptycho_iterative.workflow.run_iterative` under a progress bar of the iterations."""
    from ptycho.io.datasets import load_dataset
    from ptycho.workflows.probe_setup import probe_from_file
    from ptycho_cli.api import progress_bar
    from ptycho_iterative.workflow import run_iterative

    with load_dataset(dataset, mask=mask) as ds, progress_bar(cfg.engine, quiet=quiet, extra="error {task.fields[error]}", error="-") as update:
        def on_iteration(state: Any) -> None:
            update(state.iteration, state.iterations, error=f"{state.error:.3e}")

        fingerprint = ds.fingerprint() if cfg.refine_positions else None  # of the file, before any probe change
        if probe is not None:
            ds.probe = probe_from_file(probe, ds)
        return run_iterative(cfg, ds, out, figures=figures, callback=on_iteration, fingerprint=fingerprint)


def _summary_rows(run: IterativeRun, cfg: IterativeConfig, *, with_errors: bool) -> dict[str, Any]:
    """The summary of a run: its files, the options, the result's geometry, errors and time
    (``with_errors``: every iteration's error as well)."""
    res = run.result
    rows: dict[str, Any] = {
        "object": str(run.path),
        "config": str(run.config_path),
        "probe": str(run.probe_path) if run.probe_path else "-",
        "amplitude": str(run.amplitude_path) if run.amplitude_path else "-",
        "phase": str(run.phase_path) if run.phase_path else "-",
        "engine": cfg.engine,
        "iterations": cfg.iterations,
        "batch size": cfg.batch_size,
        "alpha": cfg.alpha,
        "beta": cfg.beta,
        **({"regulariser": cfg.regulariser, "regulariser weight": "dose-aware" if cfg.regulariser_weight is None
            else cfg.regulariser_weight} if cfg.engine == "ml" else {}),
        "probe update": cfg.probe_update,
        "probe modes": 1 if res.probe.ndim == 2 else len(res.probe),
        "patterns": run.n_patterns,
        "N": run.N,
        "shape": "×".join(map(str, res.object.shape)),
        "origin (x, y)": f"{res.origin_x}, {res.origin_y}",
        "coverage": float(res.support.mean()),
        "positions": _positions_row(run),
        "refinement figure": str(run.refinement_path) if run.refinement_path else "-",
        "first error": float(res.errors[0]),
        "final error": float(res.errors[-1]),
        "seconds": res.seconds,
        "seconds/iteration": res.seconds_per_iteration,
    }
    if with_errors:
        rows["errors"] = [float(e) for e in res.errors]
    return rows


def _positions_row(run: Any) -> str:
    """``refined: RMS shift … px, max … px`` or ``as given``."""
    shifts = run.position_shifts()
    if shifts is None:
        return "as given"
    return f"refined: RMS shift {float((shifts**2).mean() ** 0.5):.3g} px, max {float(shifts.max()):.3g} px"


@hookimpl
def ptycho_commands():
    return [CommandSpec("iterative", iterative_command, config_section=SECTION)]
