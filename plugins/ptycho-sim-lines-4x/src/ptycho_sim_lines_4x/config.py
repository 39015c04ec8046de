"""Configuration of the SIM-LINES-4X study: sizes, scenarios, the probe-scale sweep.

The laptop defaults run the whole study (four scenarios and three extra sweep points) in a few
minutes on two CPU cores; :data:`FULL_SETTINGS` (``--full``) is the size of the earlier study
(N=64, a 392-px object, 2000 training positions, 20 epochs).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ptycho.workflows.study import name_list, number_list, study_pipeline

SECTION = "sim_lines_4x"
"""The section of a ``--config`` file this study reads (and writes to ``study.config.yaml``)."""

SCENARIOS: dict[str, dict[str, Any]] = {
    "gs1-ideal": {"simulate.gridsize": 1, "simulate.probe.kind": "ideal"},
    "gs1-file": {"simulate.gridsize": 1, "simulate.probe.kind": "aberrated"},
    "gs2-ideal": {"simulate.gridsize": 2, "simulate.probe.kind": "ideal"},
    "gs2-file": {"simulate.gridsize": 2, "simulate.probe.kind": "aberrated"},
}
"""The four scenarios: gridsize 1 and 2 × the ideal disk probe and the structured probe read from
a file (the packaged ``aberrated`` probe, ptycho's ``resources/probe_aberrated.npz``)."""

COMMON_SETTINGS: dict[str, Any] = {"simulate.object.kind": "lines", "simulate.scan.kind": "random"}
"""What every scenario shares: the lines object, scanned at random ("nongrid") positions."""

VARIANT_PREFIX = "lines4x-"

FULL_SETTINGS: dict[str, Any] = {
    "N": 64, "object_size": 392, "n_images": 2000, "test_n_images": 1000, "epochs": 20, "n_filters_scale": 2,
}
"""``--full``: the earlier study's size (N=64, object 392 px, 2000 training and 1000 test positions,
20 epochs) with ptycho's default network width."""


def variant_settings(scenario: str) -> dict[str, Any]:
    """The dotted pipeline settings of a scenario (what its ``lines4x-…`` A/B variant sets)."""
    return {**COMMON_SETTINGS, **SCENARIOS[scenario]}


class SimLines4xConfig(BaseModel):
    """Everything the study depends on; the same config gives the same numbers (fixed seeds).

    Sizes apply to every scenario. ``test_n_images`` positions (default half of ``n_images``) form
    the test scan: a second, independent random scan of the *same* object (scan and noise seed
    ``test_scan_seed``); the model trained on the training scan reconstructs it and is scored
    against the true object over the test scan's area.

    The probe-scale sweep reruns ``sweep_scenario`` with the probe amplitude multiplied by each of
    ``probe_scales``. In ptycho's gauge (``Σ|P|² = photons per pattern``) that is the same
    experiment at ``nphotons × scale²`` photons: the sweep asks whether reconstruction quality,
    the absolute amplitude and the absence of NaN survive a change of the data's scale.
    ``pipeline`` holds further nested pipeline settings for every run (``train.jit: false``,
    ``train.learning_rate: 5e-4``, …), applied beneath each scenario's own settings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    N: int = Field(default=32, description="pattern size (32 or 64; 128 and 256 work but are slow)")
    object_size: int = Field(default=96, ge=16, description="object side in pixels")
    n_images: int = Field(default=256, ge=4, description="training scan positions")
    test_n_images: int | None = Field(default=None, ge=4, description="test scan positions (default n_images // 2)")
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=16, ge=1)
    n_filters_scale: int = Field(default=1, ge=1, le=8, description="network width")
    nphotons: float = Field(default=1e9, gt=0, description="photons per pattern (unit object) at probe scale 1")
    seed: int = Field(default=0, ge=0, description="object, training scan, noise and weight seed")
    test_scan_seed: int = Field(default=1, ge=0, description="scan and noise seed of the test scan")
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    probe_scales: tuple[float, ...] = Field(default=(0.5, 1.0, 2.0, 4.0), description="probe amplitude factors; () = no sweep")
    sweep_scenario: str = "gs2-ideal"
    pipeline: dict[str, Any] = Field(default_factory=dict, description="extra nested pipeline settings for every run")
    figure_dpi: int = Field(default=100, ge=30, le=600)

    _scenario_list = field_validator("scenarios", mode="before")(name_list)
    _scale_list = field_validator("probe_scales", mode="before")(number_list)

    @model_validator(mode="after")
    def _check(self) -> SimLines4xConfig:
        known = ", ".join(SCENARIOS)
        for name in (*self.scenarios, self.sweep_scenario):
            if name not in SCENARIOS:
                raise ValueError(f"unknown scenario '{name}'; use one of {known}")
        if not self.scenarios and not self.probe_scales:
            raise ValueError("nothing to run: no scenarios and no probe scales")
        if len(set(self.scenarios)) != len(self.scenarios):
            raise ValueError("scenarios: a scenario is named twice")
        for scale in self.probe_scales:
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"probe_scales: {scale} is not a positive number")
        return self

    def base_pipeline(self) -> dict[str, Any]:
        """Nested pipeline settings shared by every run: sizes, seeds, photons, then ``pipeline``."""
        return study_pipeline(self, {"nphotons": self.nphotons})
