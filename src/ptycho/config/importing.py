"""Configuration of ``ptycho import`` (other tools' files → the canonical dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ptycho.config.base import StrictModel


class ImportConfig(StrictModel):
    """How a foreign scan becomes a canonical dataset.

    ``format`` names the importer (default: the first whose ``sniff`` accepts the file). ``dc``
    says where the zero frequency of the patterns is; ``auto`` takes the format's own convention
    and, where it has none, detects it (and refuses when the patterns do not tell). ``N`` with
    ``reduce`` shrinks larger patterns (:mod:`ptycho.data.resample`). The physical quantities
    override the file's; ``probe`` and ``mask`` add or replace what the file holds.
    """

    format: str | None = Field(default=None, description="importer name (default: detected from the file)")
    dc: Literal["auto", "corner", "centre"] = Field(
        default="auto", description="zero frequency of the source patterns: at the array corner, at the centre, "
                                    "or auto (the format's convention, else detected)")
    N: int | None = Field(default=None, gt=0, description="output pattern size (default: the source's)")
    reduce: Literal["crop", "bin"] = Field(default="crop", description="how patterns larger than N shrink")
    probe: Path | None = Field(default=None, description="probe file (a dataset, PtychoPINN NPZ or Ptychodus product)")
    mask: Path | None = Field(default=None, description="valid-pixel mask in the source's layout (.npy, or key 'mask')")
    probe_power: Literal["auto", "keep", "counts"] = Field(
        default="auto", description="the probe's Σ|P|²: keep the file's, set it to the photons estimated from the "
                                    "counts, or auto (keep unless it is off by more than a factor "
                                    "probe_power_tolerance)")
    probe_power_tolerance: float = Field(default=4.0, ge=1, description="auto: largest accepted ratio of probe "
                                                                          "power to the counts' estimate")
    detect_bad_pixels: bool = Field(default=True, description="mask hot, saturated and dead pixels found in the data")
    photon_energy_eV: float | None = Field(default=None, gt=0)
    detector_distance_m: float | None = Field(default=None, gt=0)
    detector_pixel_size_m: float | None = Field(default=None, gt=0)
    overwrite: bool = Field(default=False, description="replace an existing output file")
    sample_patterns: int = Field(default=256, ge=1, description="patterns sampled (evenly) for the statistics: "
                                                                "zero-frequency detection, bad pixels, photons")
