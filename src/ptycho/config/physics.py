"""Configuration of the physical parts of a simulation: object, probe, scan."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from ptycho.config.base import StrictModel

NonNegative = Annotated[float, Field(ge=0)]

MAX_PROBE_MODES = 10
"""Most incoherent probe modes a run derives or reconstructs (``ptycho.physics.modes.derive_modes``
makes up to this many)."""
DEFAULT_MODE_POWER_RATIO = 0.3
"""Power of each derived probe mode over the one before: two modes share 77 % / 23 %."""


class ObjectConfig(StrictModel):
    """Synthetic object: a pattern ``p ∈ [0, 1]`` mapped to ``a(p)·exp(i·φ(p))``.

    ``kind`` is a registered object name (``lines``, ``grf``, ``points``, ``diagonals``,
    ``siemens``), ``image:PATH``, or ``file:PATH[:KEY]`` (a complex transmission from a file; the
    amplitude and phase ranges do not apply to it). ``size`` is the object side in pixels; by default three
    times the pattern size ``N``.
    """

    kind: str = "lines"
    size: int | None = Field(default=None, ge=8, description="object side S in pixels (default 3·N)")
    amplitude_min: float = Field(default=0.6, ge=0)
    amplitude_max: float = Field(default=1.0, gt=0)
    phase_min_rad: float = 0.0
    phase_max_rad: float = 1.0
    feature_scale_px: float = Field(default=1.0, gt=0, description="blur scale of pattern features")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "ObjectConfig":
        if self.amplitude_min > self.amplitude_max:
            raise ValueError("amplitude_min must not exceed amplitude_max")
        if self.phase_min_rad > self.phase_max_rad:
            raise ValueError("phase_min_rad must not exceed phase_max_rad")
        return self


class ProbeConfig(StrictModel):
    """Illumination. ``kind``: ``ideal`` (smoothed disk, optional defocus), ``gaussian``,
    a registered plugin probe, or ``file:PATH`` (dataset, PtychoPINN NPZ or Ptychodus product;
    all of a multi-mode probe's modes are kept). ``modes`` > 1 makes a mixed-state probe of that
    many incoherent modes from a one-mode probe (docs/simulation.md#probe-modes).

    Lengths are in pixels of the ``N×N`` probe window, as fractions of ``N`` where noted.
    The probe is always normalised so that ``Σ|P|² = nphotons`` (docs/conventions.md#photon-gauge).
    """

    kind: str = "ideal"
    modes: int | None = Field(default=None, ge=1, le=MAX_PROBE_MODES, description="incoherent modes K (mixed state); default: "
                              "those of the probe file, else 1; K > 1 from a one-mode probe follows "
                              "ptycho.physics.modes.derive_modes")
    mode_power_ratio: float = Field(default=DEFAULT_MODE_POWER_RATIO, gt=0, le=1, description="power of each derived mode over the "
                                    "one before (geometric decay)")
    diameter_frac: float = Field(default=0.7, gt=0, le=1, description="disk diameter / N")
    edge_px: NonNegative = Field(default=2.0, description="width of the smoothed disk edge")
    defocus_rad: float = Field(default=8.0, description="quadratic phase at the disk edge, radians (breaks the twin-image symmetry)")
    sigma_frac: float = Field(default=0.15, gt=0, description="Gaussian probe sigma / N")


class ScanConfig(StrictModel):
    """Scan pattern. ``random``: uniform positions keeping every window inside the object;
    ``grid``: raster with ``step_px`` (default: the step that spreads ``n_images`` over the
    object), optional Gaussian ``jitter_px``."""

    kind: str = "random"
    n_images: int = Field(default=512, ge=1)
    step_px: float | None = Field(default=None, gt=0)
    jitter_px: NonNegative = 0.0
    border_px: NonNegative = Field(default=0.0, description="extra margin kept free at the object edge")
    seed: int | None = Field(default=None, ge=0, description="seed of the positions and their noise "
                             "(default: the global seed); another value scans the same object anew")

    @field_validator("kind")
    @classmethod
    def _kind_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("scan kind must not be empty")
        return value
