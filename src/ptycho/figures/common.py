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
