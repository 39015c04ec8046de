"""The training loss figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho.figures.common import new_figure, save_figure


def loss_figure(path: Path, history: dict, *, loss_name: str) -> Path:
    """Training and validation loss per epoch (log scale) and the learning rate."""
    fig, axes = new_figure(1, 2, size=(10, 3.8))
    epochs = np.asarray(history.get("epoch", []))
    ax = axes[0, 0]
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        values = np.asarray(history.get(key, []), dtype=float)
        if values.size and np.isfinite(values).any():
            ax.plot(epochs[: len(values)], values, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Poisson NLL excess per pixel (normalised)" if loss_name == "nll" else "amplitude MAE (normalised)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0, 1]
    ax.plot(epochs, history.get("learning_rate", []), marker="o", ms=3, color="tab:green")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
