"""The options of position refinement that ``train`` and ``infer`` share (docs/positions.md#in-train-and-infer)."""

from __future__ import annotations

from pydantic import Field

from ptycho.config.base import StrictModel
from ptycho.config.iterative import DEFAULT_POSITION_MAX_SHIFT_PX, DEFAULT_POSITION_START

DEFAULT_POSITION_INIT_PASSES = 40
"""rPIE passes that refine the positions before training or inference (``refine_positions``): the
first ``position_start`` (10) only shape the object, the rest move the positions."""


class PositionRefinementOptions(StrictModel):
    """How many rPIE passes refine the positions (with ``refine_positions``) and how far they may move."""

    position_init_passes: int = Field(
        default=DEFAULT_POSITION_INIT_PASSES, ge=DEFAULT_POSITION_START + 1, le=1000,
        description=f"rPIE passes of the position refinement (positions move after the first {DEFAULT_POSITION_START})")
    position_max_shift_px: float = Field(
        default=DEFAULT_POSITION_MAX_SHIFT_PX, gt=0, le=64, description="bound on a refined position's offset, per axis (px)")
