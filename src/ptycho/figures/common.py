"""Shared figure plumbing: a headless Agg figure saved atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def new_figure(rows: int, cols: int, *, size: tuple[float, float]) -> tuple[Any, np.ndarray]:
    """A matplotlib Figure with an Agg canvas and a ``(rows, cols)`` array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


ROBUST_PERCENTILES = (0.5, 99.5)
"""Colour limits of an image: these percentiles, so a few outliers (edge pixels of a stitched
object) do not stretch the range of the rest."""
WRAPPED_PHASE_SPAN = 0.9 * 2 * np.pi
"""A phase spanning more than this is shown with a cyclic map over [−π, π]; a narrower one (the
default 0–1 rad object) with a sequential map over its own range, so its extremes look different."""


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """``(vmin, vmax)`` at :data:`ROBUST_PERCENTILES` of the finite values (NaN marks no data)."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, ROBUST_PERCENTILES))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def phase_display(phase: np.ndarray) -> dict[str, Any]:
    """``cmap``, ``vmin`` and ``vmax`` for a phase image (radians; NaN marks no data): cyclic over
    [−π, π] when it wraps, else sequential over its robust range."""
    lo, hi = robust_limits(phase)
    if hi - lo > WRAPPED_PHASE_SPAN:
        return {"cmap": "twilight", "vmin": -np.pi, "vmax": np.pi}
    return {"cmap": "viridis", "vmin": lo, "vmax": hi}


def show_image(fig: Any, ax: Any, image: np.ndarray, title: str, *, cmap: str = "gray", **kwargs: Any) -> None:
    """``imshow`` with a colour bar and no ticks."""
    im = ax.imshow(image, cmap=cmap, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)


def save_figure(fig: Any, path: Path, *, dpi: int = 110) -> Path:
    """Save as PNG atomically (no partial file under the final name)."""
    from ptycho.io.atomic import atomic_output

    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    return Path(path)
