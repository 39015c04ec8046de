"""Configuration of the dose study: high vs low photon count × Poisson NLL vs MAE loss.

The laptop defaults run the four arms in a minute or two on two CPU cores; :data:`FULL_SETTINGS`
(``--full``) is the size of the earlier study (N=64, gridsize 2, 2000 training patterns), trained
longer (20 epochs rather than 5) and scored on more test positions (512 rather than 128).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ptycho.builtins import DOSE_HIGH, DOSE_LOW  # the doses of the dose-high / dose-low variants
from ptycho.workflows.study import name_list, number_list, study_pipeline

SECTION = "dose"
"""The section of a ``--config`` file this study reads (and writes to ``study.config.yaml``)."""

LOSSES = ("nll", "mae")
Loss = Literal["nll", "mae"]

FULL_SETTINGS: dict[str, Any] = {
    "N": 64, "gridsize": 2, "object_size": 256, "n_images": 2000, "test_n_images": 512, "epochs": 20,
    "n_filters_scale": 2,
}
"""``--full``: N=64, gridsize 2, 256-px object, 2000 training and 512 test positions, 20 epochs,
ptycho's default network width."""


def dose_label(dose: float, doses: tuple[float, ...]) -> str:
    """``high`` / ``low`` for the largest / smallest of the doses, else ``1e+06``-style."""
    if len(doses) > 1 and dose == max(doses):
        return "high"
    if len(doses) > 1 and dose == min(doses):
        return "low"
    return f"{dose:.0e}"


def variant_settings(dose: float, loss: str) -> dict[str, Any]:
    """The dotted pipeline settings of one arm (what its ``dose-…-…`` A/B variant sets)."""
    return {"simulate.nphotons": dose, "train.loss": loss}


class DoseConfig(BaseModel):
    """Everything the study depends on; the same config gives the same numbers (fixed seeds).

    Every arm simulates the same object and scan (``seed``) at its dose — Poisson noise with
    ``nphotons`` expected counts per pattern for a unit-amplitude object — trains with its loss,
    and reconstructs a second, independent scan of the same object (``test_scan_seed``, default
    ``n_images // 2`` positions), scored against the truth. ``pipeline`` holds further nested
    pipeline settings for every arm (``train.jit: false``, …), beneath the arm's own settings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    N: int = Field(default=32, description="pattern size (32 or 64; 128 and 256 work but are slow)")
    gridsize: int = Field(default=1, ge=1, le=4)
    object_size: int = Field(default=96, ge=16, description="object side in pixels")
    n_images: int = Field(default=256, ge=4, description="training scan positions")
    test_n_images: int | None = Field(default=None, ge=4, description="test scan positions (default n_images // 2)")
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=16, ge=1)
    n_filters_scale: int = Field(default=1, ge=1, le=8, description="network width")
    doses: tuple[float, ...] = Field(default=(DOSE_HIGH, DOSE_LOW), description="photons per pattern, one row each")
    losses: tuple[Loss, ...] = Field(default=LOSSES, description="training losses, one column each")
    object_kind: str = Field(default="lines", description="object of every arm")
    seed: int = Field(default=0, ge=0, description="object, training scan, noise and weight seed")
    test_scan_seed: int = Field(default=1, ge=0, description="scan and noise seed of the test scan")
    pattern_index: int = Field(default=0, ge=0, description="training pattern shown in the figure")
    pipeline: dict[str, Any] = Field(default_factory=dict, description="extra nested pipeline settings for every arm")
    figure_dpi: int = Field(default=110, ge=30, le=600)

    _dose_list = field_validator("doses", mode="before")(number_list)
    _loss_list = field_validator("losses", mode="before")(name_list)

    @model_validator(mode="after")
    def _check(self) -> DoseConfig:
        if not self.doses or not self.losses:
            raise ValueError("nothing to run: give at least one dose and one loss")
        for dose in self.doses:
            if not (math.isfinite(dose) and dose > 0):
                raise ValueError(f"doses: {dose} is not a positive, finite photon count")
        for name, values in (("doses", self.doses), ("losses", self.losses)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: a value is given twice")
        return self

    def base_pipeline(self) -> dict[str, Any]:
        """Nested pipeline settings shared by every arm: sizes, seeds, noise, the object, a random
        scan, then ``pipeline``."""
        return study_pipeline(self, {"gridsize": self.gridsize, "noise": True, "object": {"kind": self.object_kind},
                                     "scan": {"kind": "random"}})
