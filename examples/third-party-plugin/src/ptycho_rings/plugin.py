"""The hooks of the example plugin, using only the public plugin API (:mod:`ptycho_cli.api`) and
numpy at import time: ``ptycho --help`` must stay fast and must not import TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ptycho_cli.api import (
    CommandSpec,
    ConfigError,
    Json,
    ObjectSpec,
    Quiet,
    VariantSpec,
    Verbose,
    guard,
    hookimpl,
    print_summary,
)

DEFAULT_PERIOD_PX = 12.0


def rings_pattern(size: int, rng: np.random.Generator, config: Any, arg: str | None) -> np.ndarray:
    """Concentric rings about a random centre: ``0.5 + 0.5·cos(2π r / period)``.

    Parameters
    ----------
    size : object side S in pixels
    rng : the seeded generator ptycho passes (same seed ⇒ same object)
    config : the ``ObjectConfig`` (unused here; ``feature_scale_px`` etc. are available)
    arg : the text after ``rings:``, the ring period in pixels (default 12)

    Returns
    -------
    (S, S) float64 in [0, 1]; ptycho maps it to amplitude and phase.
    """
    try:
        period = float(arg) if arg else DEFAULT_PERIOD_PX
    except ValueError:
        raise ConfigError(f"object rings:{arg}: the ring period must be a number of pixels, e.g. rings:8") from None
    if period <= 0:
        raise ConfigError(f"object rings:{arg}: the ring period must be positive, e.g. rings:8")
    cy, cx = rng.uniform(0.3 * size, 0.7 * size, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - cy, xx - cx)
    return 0.5 + 0.5 * np.cos(2 * np.pi * r / period)


def object_preview(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Any registered object: lines, siemens, rings, rings:8, …")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG (amplitude and phase).")],
    size: Annotated[int, typer.Option("--size", help="Object side in pixels.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the object.")] = 0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: Json = False,
) -> None:
    """Draw the amplitude and phase of any registered object type (built-in or from a plugin).

    Examples:

      ptycho object-preview rings --out rings.png

      ptycho object-preview rings:6 --size 256 --out fine-rings.png
    """
    with guard(verbose):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from ptycho.config.physics import ObjectConfig
        from ptycho.physics.object import make_object

        components = ctx.obj.components()  # every installed plugin's objects, probes, scans, …
        spec, arg = components.objects.get(kind, field_name="object-preview KIND")
        config = ObjectConfig(kind=kind, size=size)
        obj = make_object(np.asarray(spec.generate(size, np.random.default_rng(seed), config, arg)), config)
        fig = Figure(figsize=(8, 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        for ax, values, title in zip(fig.subplots(1, 2), (np.abs(obj), np.angle(obj)), ("amplitude", "phase (rad)")):
            fig.colorbar(ax.imshow(values, cmap="gray" if title == "amplitude" else "viridis"), ax=ax)
            ax.set_title(f"{kind}: {title}")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        print_summary("object-preview", {"object": kind, "size": size, "amplitude mean": float(np.abs(obj).mean()),
                                         "figure": str(out)}, as_json=as_json, quiet=quiet)


@hookimpl
def ptycho_objects():
    return [ObjectSpec("rings", rings_pattern, "rings[:PERIOD] — concentric rings (example plugin)")]


@hookimpl
def ptycho_commands():
    return [CommandSpec("object-preview", object_preview)]


@hookimpl
def ptycho_ab_variants():
    return [VariantSpec("rings-object", {"simulate.object.kind": "rings"}, "the rings object of the example plugin")]
