"""Configuration of ``ptycho infer``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ptycho.config.positions import PositionRefinementOptions


GROUP_AVERAGE_MAX_PHOTONS = 1e5
"""Photons per pattern below which ``infer.group_average`` is on by default. Measured on the
standard scenario (gridsize 2, 10 epochs, docs/model.md#physics-layers): at 1e4 the group average
raised phase / amplitude SSIM by +0.041 / +0.030 (ML estimate) and +0.032 / +0.057 (rPIE estimate),
at 1e9 it lowered them by 0.032 / 0.050 (its sub-pixel re-extraction blurs patches the network
already makes consistent). Nothing was measured between; 1e5 is the boundary the other dose rules use."""


class InferConfig(PositionRefinementOptions):
    """Batching and grouping for inference. Grouping follows the bundle's training settings
    (gridsize, neighbours, seed); by default every position seeds one group."""

    batch_size: int = Field(default=64, gt=0)
    n_groups: int | None = Field(default=None, gt=0, description="default: one group per position")
    dose_tolerance: float = Field(default=2.0, gt=1, description="largest photon-scale ratio accepted")
    group_average: bool | None = Field(
        default=None, description="at gridsize > 1, write each member's window of its group's overlap-averaged "
                                  "patches (what the training loss compared with the counts) instead of the "
                                  "network's own patch; unset: on when a pattern holds fewer than "
                                  f"{GROUP_AVERAGE_MAX_PHOTONS:g} photons")
    jit: bool = Field(default=False, description="XLA-compile the forward pass (off: faster on the CPU, benchmarks/RESULTS.md)")
    mask: Path | None = Field(default=None, description="valid-pixel mask file replacing the dataset's mask "
                                                        "(default: the dataset's; without one, the bundle's training mask)")
    probe_file: str | None = Field(
        default=None, description="make the input with this probe (any file a file: probe accepts) instead of the "
                                  "bundle's (trained from a probe file or refined) or the dataset's")
    refine_positions: bool = Field(
        default=False, description="refine the new scan's positions (bounded sub-pixel offsets, mean shift removed) "
                                   "in rPIE passes with the bundle's probe before the input estimate; groups, input "
                                   "and the patches file use the refined ones")
