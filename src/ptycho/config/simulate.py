"""Configuration of ``ptycho simulate``."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from ptycho.config.base import StrictModel
from ptycho.config.physics import ObjectConfig, ProbeConfig, ScanConfig

MAX_PHOTONS = 1e18
"""Largest finite photon budget: NumPy's Poisson sampler takes rates below ~9.2e18 (int64)."""


class SimulateConfig(StrictModel):
    """Everything that determines a simulated dataset; the same config and seed give the same file.

    ``nphotons`` is the expected total counts per pattern for a unit-amplitude object and sets the
    probe gauge ``Σ|P|² = nphotons``. ``nphotons = inf`` means noise-free data with the gauge at
    the default 1e9 photons (same as ``noise = false``).
    """

    N: int = Field(default=64, ge=8, le=1024, description="pattern size (pixels)")
    gridsize: int = Field(default=1, ge=1, le=4, description="positions per group side (C = gridsize²)")
    nphotons: float = Field(default=1e9, gt=0)
    noise: bool = True
    seed: int = Field(default=0, ge=0)
    chunk_size: int = Field(default=512, ge=1, description="patterns computed and written at once")
    object: ObjectConfig = ObjectConfig()
    probe: ProbeConfig = ProbeConfig()
    scan: ScanConfig = ScanConfig()
    photon_energy_eV: float | None = Field(default=None, gt=0)
    detector_distance_m: float | None = Field(default=None, gt=0)
    pixel_size_m: float | None = Field(default=None, gt=0, description="object pixel size")

    @field_validator("nphotons")
    @classmethod
    def _countable(cls, value: float) -> float:
        if math.isfinite(value) and value > MAX_PHOTONS:
            raise ValueError(f"at most {MAX_PHOTONS:g} photons per pattern can be drawn as Poisson counts; "
                             "use inf (or noise off) for exact, noise-free data")
        return value

    @field_validator("N")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("N must be even")
        return value

    @property
    def object_size(self) -> int:
        """Object side ``S`` in pixels (``3·N`` unless set)."""
        return self.object.size if self.object.size is not None else 3 * self.N

    @property
    def photon_gauge(self) -> float:
        """Photon count the probe is normalised to."""
        return 1e9 if math.isinf(self.nphotons) else self.nphotons

    @property
    def add_noise(self) -> bool:
        return self.noise and not math.isinf(self.nphotons)
