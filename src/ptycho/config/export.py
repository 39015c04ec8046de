"""Configuration of ``ptycho export-ptychodus`` (docs/reconstruction.md#export)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ptycho.config.base import StrictModel


class ExportConfig(StrictModel):
    """What goes into a Ptychodus product besides the arrays.

    The physical quantities (``photon_energy_eV``, ``detector_distance_m``, ``pixel_size_m``)
    default to the dataset's metadata; a value given here overrides it. One that is known
    from neither is an error naming the field to set — never a silent default.
    ``probe_pixel_size_m`` defaults to ``pixel_size_m`` and ``probe_photon_count`` to the
    exported probe's ``Σ|P|²``.
    """

    format: Literal["h5", "npz"] | None = Field(default=None, description="product format (default: from the suffix)")
    name: str | None = Field(default=None, description="product name (default: the output's stem or folder)")
    comments: str | None = Field(default=None, description="free text (default: provenance)")
    photon_energy_eV: float | None = Field(default=None, gt=0)
    detector_distance_m: float | None = Field(default=None, gt=0)
    pixel_size_m: float | None = Field(default=None, gt=0, description="object pixel size")
    probe_pixel_size_m: float | None = Field(default=None, gt=0, description="default: pixel_size_m")
    exposure_time_s: float | None = Field(default=None, ge=0, description="default: dataset metadata, else 0")
    probe_photon_count: float | None = Field(default=None, ge=0, description="default: Σ|P|² of the probe")
    mass_attenuation_m2_per_kg: float = Field(default=0.0, ge=0)
    tomography_angle_deg: float = 0.0
    probe: Path | None = Field(default=None, description="probe file to export instead of the result's (a dataset, "
                               "PtychoPINN NPZ, Ptychodus product or <stem>.probe.npz), as it is")
    with_diffraction: bool = Field(default=False, description="also write Ptychodus' diffraction.h5 beside it")
