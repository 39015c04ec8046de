"""``stitch``: per-position object patches → one object image (docs/reconstruction.md#stitching).

The object is made by :func:`~ptycho.workflows.stitch_canvas.stitch_patches`: the central crop of
every patch placed where its pixels came from and overlap-averaged, refined by least squares at
gridsize 1 (that module's docstring gives the crop geometry, the canvas and both methods). This
module writes it: the object file with its metadata, the figures and the resolved config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho import __version__
from ptycho.config.stitch import StitchConfig
from ptycho.io.objects import ObjectImage, object_format, write_object
from ptycho.io.patches import PatchesFile, read_patches
from ptycho.workflows.stitch_canvas import Progress, stitch_patches


@dataclass(frozen=True)
class StitchResult:
    """What :func:`stitch` wrote and the canvas it built."""

    path: Path
    config_path: Path
    amplitude_path: Path | None
    phase_path: Path | None
    shape: tuple[int, int]
    origin_x: float
    origin_y: float
    crop: int
    N: int
    n_groups: int
    n_patches: int
    coverage: float  # fraction of canvas pixels supported
    seconds: float


def stitch(
    config: StitchConfig, patches: Path | PatchesFile, out: Path, *, figures: bool = True,
    progress: Progress | None = None,
) -> StitchResult:
    """Stitch a patches file into an object file, with amplitude/phase PNGs and the resolved config.

    ``patches`` is a path or an already opened :class:`~ptycho.io.patches.PatchesFile`.

    Writes ``out`` (``.npz``/``.h5``), ``<stem>.amplitude.png``, ``<stem>.phase.png`` and
    ``<stem>.config.yaml`` beside it, each atomically. Patches inferred at refined positions give
    an object file that records them (docs/positions.md#outputs).

    Raises
    ------
    ConfigError
        Crop larger than ``N`` or an unknown output suffix.
    DataError
        Invalid patches file (missing keys, shapes, NaN) or positions spanning an absurd canvas.
    """
    from ptycho.io.config_file import write_resolved_config
    from ptycho.io.paths import check_output_file, refuse_overwriting_inputs

    t0 = time.perf_counter()
    out = check_output_file(out)
    object_format(out)  # fail on a bad suffix before any work
    source = patches.path if isinstance(patches, PatchesFile) else Path(patches)
    refuse_overwriting_inputs(stitch_outputs(out), {"patches file": source}, "stitch")
    pf = patches if isinstance(patches, PatchesFile) else read_patches(patches)
    stitched = stitch_patches(pf, config, progress)
    obj, support, ox, oy, M = stitched.object, stitched.support, stitched.origin_x, stitched.origin_y, stitched.crop
    metadata = {
        "created_by": "ptycho stitch", "ptycho_version": __version__, "patches_file": str(pf.path),
        "N": pf.N, "gridsize": pf.gridsize, "crop": M, "crop_centre_offset_px": stitched.crop_offset,
        "crop_source": stitched.crop_source, "scan_spacing_px": stitched.spacing,
        "probe_diameter_px": stitched.probe_diameter,
        "n_groups": pf.n_groups, "n_patches": pf.n_groups * pf.C, "placement": "bilinear (adjoint of extract_patches)",
        "method": stitched.method,
        "object_shape_source": list(pf.object_shape) if pf.object_shape else None, "provenance": pf.provenance,
    }
    positions = pf.pattern_positions() if pf.refined_positions else None  # docs/positions.md#outputs
    write_object(out, ObjectImage(obj, support, float(ox), float(oy), metadata, positions))
    config_path = write_resolved_config(out, "stitch", config)
    amp_path = phase_path = None
    if figures:
        amp_path, phase_path = object_figures(out, obj, support, (ox, oy))
    return StitchResult(
        path=out, config_path=config_path, amplitude_path=amp_path, phase_path=phase_path, shape=obj.shape,
        origin_x=float(ox), origin_y=float(oy), crop=M, N=pf.N, n_groups=pf.n_groups, n_patches=pf.n_groups * pf.C,
        coverage=float(support.mean()), seconds=time.perf_counter() - t0,
    )


def stitch_outputs(out: Path) -> list[Path]:
    """Every file :func:`stitch` writes for output ``out``."""
    from ptycho.io.config_file import config_path_for

    return [out, config_path_for(out), *(out.with_name(f"{out.stem}.{name}.png") for name in ("amplitude", "phase"))]


def object_figures(out: Path, obj: np.ndarray, support: np.ndarray, origin: tuple[int, int]) -> tuple[Path, Path]:
    """``<stem>.amplitude.png`` and ``<stem>.phase.png`` with colour bars; unsupported pixels blank."""
    from ptycho.figures.common import new_figure, phase_display, robust_limits, save_figure, show_image

    H, W = obj.shape
    extent = (origin[0] - 0.5, origin[0] + W - 0.5, origin[1] + H - 0.5, origin[1] - 0.5)  # global pixels
    paths = []
    for name, values in (("amplitude", np.abs(obj)), ("phase", np.angle(obj))):
        fig, axes = new_figure(1, 1, size=(5.0, 4.2))
        unit = " (rad)" if name == "phase" else ""
        shown = np.where(support, values, np.nan)
        if name == "phase":
            display = phase_display(shown)
        else:
            vmin, vmax = robust_limits(shown)
            display = {"cmap": "gray", "vmin": vmin, "vmax": vmax}
        show_image(fig, axes[0, 0], shown, f"{name}{unit}, {H}×{W} px at x={origin[0]}, y={origin[1]}",
                   extent=extent, **display)
        paths.append(save_figure(fig, out.with_name(f"{out.stem}.{name}.png")))
    return paths[0], paths[1]
