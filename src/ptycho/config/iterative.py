"""The options of ``ptycho iterative`` as one validated, immutable model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ptycho.config.physics import MAX_PROBE_MODES

Engine = Literal["rpie", "epie", "ml"]
Regulariser = Literal["tv", "gradient", "none"]

DEFAULT_ALPHA: dict[str, float] = {"rpie": 0.1, "epie": 1.0, "ml": 0.1}
"""rPIE: blend of local and maximum illumination in the object step's denominator (Maiden et
al. 2017; small = bolder steps where the probe is weak). 0.1 is stable at every batch size
tried (serial rPIE with 0.05 diverges on dense scans) and within ~10 % of the fastest.
ePIE: the object step size (1 = Maiden & Rodenburg 2009).
ML: the same blend in the preconditioner of the object gradient (the step length is solved for)."""
DEFAULT_BETA: dict[str, float] = {"rpie": 0.5, "epie": 1.0, "ml": 0.5}
"""The same meanings for the probe step (used only with ``probe_update``)."""
DEFAULT_BATCH_SIZE: dict[str, int] = {"rpie": 8, "epie": 8, "ml": 64}
"""PIE: positions updated together. Small batches converge in fewer iterations, large ones cost
less per iteration; 8 gave the shortest time to a given SSIM in the measurements of the iterative
plugin's README.
ML: patterns held in memory at once during a pass over the scan (every iteration uses all of
them; the result does not depend on it beyond rounding)."""
DEFAULT_SUPPORT_FRACTION = 0.05
"""Support = pixels whose summed probe intensity exceeds this fraction of its maximum."""
DEFAULT_POSITION_START = 10
"""Iterations before positions move: the object must be roughly right first, or the shifts fit
its errors (pty-chi and tike also start position correction late)."""
DEFAULT_POSITION_STEP = 0.5
"""Fraction of each least-squares shift applied: the shift is estimated from the same waves that
update the object, so a full step overshoots."""
DEFAULT_POSITION_MAX_SHIFT_PX = 2.0
"""Bound on a refined position's distance from its start, per axis (pixels): about 3σ of the
sub-pixel encoder errors refinement is meant for."""


class IterativeConfig(BaseModel):
    """Options of an ePIE / rPIE / maximum-likelihood reconstruction (``alpha``, ``beta`` and
    ``batch_size`` default per engine; ``regulariser*`` apply to ``ml`` only), with mixed-state
    probes (``probe_modes``, docs/reconstruction.md#mixed-state-reconstruction) and position
    refinement (``refine_positions`` and ``position_*``, docs/positions.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Engine = "rpie"
    iterations: int = Field(default=50, ge=1, le=100_000, description="passes over every position")
    alpha: float = Field(default=DEFAULT_ALPHA["rpie"], gt=0, le=2, description="object: rPIE blend / ePIE step")
    beta: float = Field(default=DEFAULT_BETA["rpie"], gt=0, le=2, description="probe: rPIE blend / ePIE step")
    probe_update: bool = False
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE["rpie"], ge=1, description="positions updated (ml: held) at once")
    seed: int = Field(default=0, ge=0, description="seed of the minibatch order")
    crop_to_scan: bool = Field(default=False, description="write only the supported bounding box")
    support_fraction: float = Field(default=DEFAULT_SUPPORT_FRACTION, gt=0, lt=1)
    regulariser: Regulariser = Field(default="tv", description="ml: smoothed total variation, gradient penalty or none")
    regulariser_weight: float | None = Field(
        default=None, ge=0, description="ml: weight μ of the regulariser in counts (default: dose-aware, "
        "0.5·√(mean illumination per pixel); see ptycho.iterative.ml)")
    probe_modes: int | None = Field(default=None, ge=1, le=MAX_PROBE_MODES, description="incoherent probe modes to reconstruct "
                                    "(default: the probe's); fewer keep the strongest, more add derived modes")
    orthogonalise_modes: bool = Field(default=True, description="orthogonalise the probe modes after every "
                                      "iteration with probe update (same counts, modes sorted by power)")
    refine_positions: bool = Field(default=False, description="refine every position by sub-pixel offsets")
    position_start: int = Field(default=DEFAULT_POSITION_START, ge=0, description="iterations before positions move")
    position_step: float = Field(default=DEFAULT_POSITION_STEP, gt=0, le=1,
                                 description="fraction of each least-squares shift applied")
    position_max_shift_px: float = Field(default=DEFAULT_POSITION_MAX_SHIFT_PX, gt=0, le=64,
                                         description="bound on a position's offset from its start, per axis (px)")

    @model_validator(mode="before")
    @classmethod
    def _engine_defaults(cls, data: Any) -> Any:
        """Fill ``alpha``/``beta``/``batch_size`` left unset (or ``None``) with the chosen engine's
        defaults."""
        if isinstance(data, dict):
            engine = data.get("engine", "rpie")
            if engine in DEFAULT_ALPHA:
                data = dict(data)
                for key, defaults in (("alpha", DEFAULT_ALPHA), ("beta", DEFAULT_BETA), ("batch_size", DEFAULT_BATCH_SIZE)):
                    if data.get(key) is None:
                        data[key] = defaults[engine]
        return data

    @model_validator(mode="after")
    def _rpie_blend(self) -> "IterativeConfig":
        if self.engine in ("rpie", "ml") and (self.alpha > 1 or self.beta > 1):
            raise ValueError(f"{self.engine} alpha and beta blend two denominators and must lie in (0, 1]")
        return self
