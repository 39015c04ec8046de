"""``ptycho simulate``: synthesise a dataset from an object, a probe and a scan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ptycho.config.simulate import SimulateConfig
from ptycho_cli.defaults import default_of
from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.specs import CommandSpec

Opt = typer.Option


def simulate_command(
    ctx: typer.Context,
    out: Annotated[Path, Opt("--out", "-o", help="Output dataset: .h5 (streamed) or .npz.")],
    object_kind: Annotated[Optional[str], Opt("--object", help="lines, grf, points, diagonals, siemens, image:PATH, file:PATH[:KEY] (complex transmission, .npz/.npy), or a plugin's.", show_default=default_of(SimulateConfig, "object.kind"))] = None,
    probe_kind: Annotated[Optional[str], Opt("--probe", help="ideal, gaussian, file:PATH (all its modes kept), or a plugin's.", show_default=default_of(SimulateConfig, "probe.kind"))] = None,
    probe_modes: Annotated[Optional[int], Opt("--probe-modes", help="Incoherent probe modes K (mixed state): K > 1 derives K orthogonal modes from a one-mode probe, power ratio probe.mode_power_ratio (default 0.3). Default: the probe's own.", show_default=False)] = None,
    scan_kind: Annotated[Optional[str], Opt("--scan", help="random (nongrid) or grid, or a plugin's.", show_default=default_of(SimulateConfig, "scan.kind"))] = None,
    gridsize: Annotated[Optional[int], Opt("--gridsize", help="Group side g (C = g² positions per group); recorded for training.", show_default=default_of(SimulateConfig, "gridsize"))] = None,
    n_images: Annotated[Optional[int], Opt("--n-images", help="Number of scan positions.", show_default=default_of(SimulateConfig, "scan.n_images"))] = None,
    N: Annotated[Optional[int], Opt("--N", help="Pattern size in pixels.", show_default=default_of(SimulateConfig, "N"))] = None,
    size: Annotated[Optional[int], Opt("--size", help="Object side in pixels (default 3·N).")] = None,
    nphotons: Annotated[Optional[float], Opt("--nphotons", help="Photons per pattern for a unit object (inf = exact data).", show_default=default_of(SimulateConfig, "nphotons"))] = None,
    seed: Annotated[Optional[int], Opt("--seed", help="Seed for object, scan and noise.", show_default=default_of(SimulateConfig, "seed"))] = None,
    no_noise: Annotated[bool, Opt("--no-noise", help="Write exact expected counts (no Poisson noise).")] = False,
    step: Annotated[Optional[float], Opt("--step", help="Grid step in pixels.")] = None,
    jitter: Annotated[Optional[float], Opt("--jitter", help="Grid jitter (std, pixels).", show_default=default_of(SimulateConfig, "scan.jitter_px"))] = None,
    photon_energy_ev: Annotated[Optional[float], Opt("--photon-energy-ev", help="Photon energy in eV, recorded for "
                                                     "export (default: not recorded).", show_default=False)] = None,
    detector_distance_m: Annotated[Optional[float], Opt("--detector-distance-m", help="Sample–detector distance in m, "
                                                        "recorded for export.", show_default=False)] = None,
    pixel_size_m: Annotated[Optional[float], Opt("--pixel-size-m", help="Object pixel size in m, recorded for export.",
                                                 show_default=False)] = None,
    fmt: Annotated[Optional[str], Opt("--format", help="h5, npz or ptychopinn-npz (default: from the suffix).")] = None,
    no_preview: Annotated[bool, Opt("--no-preview", help="Skip the preview PNG.")] = False,
    config: ConfigFiles = None,
    set_: SetItems = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Simulate a ptychography dataset (counts, DC-centred) with its ground truth.

    Writes the dataset, its resolved config (DATASET.config.yaml) and a preview PNG.

    Examples:

      ptycho simulate --object lines --gridsize 2 --out data.h5

      ptycho simulate --scan grid --step 8 --nphotons 1e4 --out low_dose.h5

      ptycho simulate --probe-modes 2 --nphotons 1e6 --out partially_coherent.h5

      ptycho simulate --config study.yaml --set object.kind=siemens --out star.npz

      ptycho simulate --photon-energy-ev 8000 --detector-distance-m 2 --pixel-size-m 1e-8 --out data.h5
    """
    from ptycho.config.simulate import SimulateConfig
    from ptycho_cli.config_io import resolve_config
    from ptycho_cli.console import print_summary, progress_bar
    from ptycho_cli.errors import guard
    from ptycho_cli.fields import COMMAND_FLAGS

    with guard(verbose, COMMAND_FLAGS["simulate"]):
        flags = {
            "object.kind": object_kind, "probe.kind": probe_kind, "probe.modes": probe_modes, "scan.kind": scan_kind,
            "gridsize": gridsize, "scan.n_images": n_images, "N": N, "object.size": size,
            "nphotons": nphotons, "seed": seed, "noise": False if no_noise else None,
            "scan.step_px": step, "scan.jitter_px": jitter, "photon_energy_eV": photon_energy_ev,
            "detector_distance_m": detector_distance_m, "pixel_size_m": pixel_size_m,
        }
        cfg = resolve_config(SimulateConfig, "simulate", files=config or (), sets=set_ or (), flags=flags,
                             sections=ctx.obj.config_sections())
        from ptycho.workflows.simulate import simulate

        with progress_bar("simulating", quiet=quiet or as_json) as update:
            result = simulate(cfg, out, ctx.obj.components(), fmt=fmt, preview=not no_preview, progress=update)
        print_summary(
            "simulated",
            {
                "dataset": str(result.path),
                "config": str(result.config_path),
                "preview": str(result.preview_path) if result.preview_path else "-",
                "patterns": result.n_patterns,
                "N": result.N,
                "object": "×".join(map(str, result.object_shape)),
                "probe photons": result.probe_photons,
                "probe modes": result.probe_modes,
                "mean counts/pattern": result.mean_total_counts,
                "overlap (nearest neighbour)": result.overlap.get("overlap_mean", float("nan")),
                "patterns/s": result.patterns_per_second,
            },
            as_json=as_json,
            quiet=quiet,
        )


@hookimpl
def ptycho_commands():
    return [CommandSpec("simulate", simulate_command)]
