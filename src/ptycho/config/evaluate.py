"""Configuration of ``ptycho evaluate`` (docs/reconstruction.md#evaluation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ptycho.config.base import StrictModel


class EvaluateConfig(StrictModel):
    """How a reconstruction is aligned to its ground truth before scoring.

    ``registration``: estimate and undo a sub-pixel translation (phase cross-correlation upsampled
    by ``upsample``, i.e. ``1/upsample`` px precision) on ``register_on``. The global phase offset
    is always removed; ``phase_ramp`` also removes a linear phase ramp. ``dpi`` is for the figures.
    """

    registration: bool = True
    upsample: int = Field(default=100, ge=1, le=10000)
    register_on: Literal["complex", "amplitude", "phase"] = "complex"
    phase_ramp: bool = False
    dpi: int = Field(default=110, ge=30, le=600, description="figure resolution")
    check_truth: bool = Field(default=True, description="refuse a truth other than the ground truth of the "
                              "dataset the reconstruction was made from (when the reconstruction records it)")
