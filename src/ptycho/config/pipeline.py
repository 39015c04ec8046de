"""Configuration of a whole pipeline run (``simulate → train → infer → stitch → evaluate``) and of
``ptycho debug-ab``, which runs two such pipelines side by side (docs/debug-ab.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ptycho.config.base import StrictModel
from ptycho.config.evaluate import EvaluateConfig
from ptycho.config.infer import InferConfig
from ptycho.config.simulate import SimulateConfig
from ptycho.config.stitch import StitchConfig
from ptycho.config.train import TrainConfig

STAGES: tuple[str, ...] = ("simulate", "group", "train", "infer", "stitch", "evaluate")
"""Pipeline stages in order; each needs the ones before it. ``group`` is the neighbour grouping
training uses (cheap, data only)."""
Stage = Literal["simulate", "group", "train", "infer", "stitch", "evaluate"]

# Defaults of a debug-ab run, sized so that `ptycho debug-ab grid nongrid` (both arms, every stage)
# finishes in a few minutes on 2 CPU cores; more epochs and images scale it up.
DEBUG_AB_N = 32
DEBUG_AB_OBJECT_SIZE = 128
DEBUG_AB_N_IMAGES = 512
DEBUG_AB_EPOCHS = 5
DEBUG_AB_N_FILTERS_SCALE = 1


class PipelineConfig(StrictModel):
    """Everything one pipeline run depends on.

    The training data are ``simulate``; the test data are a second scan of the *same* object
    (same ``simulate.seed``, hence same object and probe) drawn with ``scan.seed =
    test_scan_seed`` and ``test_n_images`` positions (default: half the training scan). The model
    trained on the first is applied to the second, stitched, and scored against the truth.
    """

    simulate: SimulateConfig = SimulateConfig()
    test_scan_seed: int = Field(default=1, ge=0, description="scan (and noise) seed of the test scan")
    test_n_images: int | None = Field(default=None, ge=1, description="test scan positions (default: half the training scan's)")
    train: TrainConfig = TrainConfig()
    infer: InferConfig = InferConfig()
    stitch: StitchConfig = StitchConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def _test_scan_differs(self) -> "PipelineConfig":
        if self.simulate.scan.seed == self.test_scan_seed:
            raise ValueError(f"test_scan_seed ({self.test_scan_seed}) equals simulate.scan.seed: the test scan "
                             "would repeat the training scan; choose another test_scan_seed")
        return self

    @property
    def test_images(self) -> int:
        """Positions in the test scan (at least one group's worth)."""
        if self.test_n_images is not None:
            return self.test_n_images
        return max(self.simulate.gridsize**2, self.simulate.scan.n_images // 2)

    def test_simulate_config(self) -> SimulateConfig:
        """The simulation of the test scan: same object, probe and physics, another scan."""
        scan = self.simulate.scan.model_copy(update={"n_images": self.test_images, "seed": self.test_scan_seed})
        return self.simulate.model_copy(update={"scan": scan})


class ToleranceConfig(StrictModel):
    """Override of one tap's tolerance; a value left out keeps the built-in default.

    Two values ``a``, ``b`` agree when ``|a − b| ≤ atol + rtol·max(|a|, |b|)``.
    """

    rtol: float | None = Field(default=None, ge=0)
    atol: float | None = Field(default=None, ge=0)


class DebugABConfig(StrictModel):
    """How ``ptycho debug-ab`` runs and compares its two arms.

    ``stages``: the last stage to run (``"train"`` runs simulate, group and train), or a comma
    list whose latest stage is the last (earlier stages always run: each feeds the next).
    ``N``, ``object_size``, ``n_images``, ``epochs`` and ``n_filters_scale`` size both arms
    (they are defaults beneath any config file or override of the pipeline keys).
    ``tolerances``: ``{stage: {tap or "*": {rtol, atol}}}`` overrides of the built-in tolerances.
    ``stop_on_divergence``: stop after the first stage whose taps diverge.
    ``replicates``: for arms that differ by design, when evaluate runs, each arm runs this many
    more times with other seeds, so the report can say whether the outcome differs beyond noise.
    """

    stages: tuple[Stage, ...] = STAGES
    N: int = Field(default=DEBUG_AB_N, ge=8)
    object_size: int = Field(default=DEBUG_AB_OBJECT_SIZE, ge=8)
    n_images: int = Field(default=DEBUG_AB_N_IMAGES, ge=1)
    epochs: int = Field(default=DEBUG_AB_EPOCHS, ge=1)
    n_filters_scale: int = Field(default=DEBUG_AB_N_FILTERS_SCALE, ge=1, le=8)
    tolerances: dict[Stage, dict[str, ToleranceConfig]] = Field(default_factory=dict)
    figure: bool = True
    stop_on_divergence: bool = False
    replicates: int = Field(default=1, ge=0, le=4, description="extra runs per arm with other seeds, for arms "
                            "that differ by design, to judge the outcome against run-to-run noise (0: off)")

    @field_validator("stages", mode="before")
    @classmethod
    def _stages_up_to(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        names = list(value or ())
        if not names or names == ["all"]:
            return STAGES
        unknown = [n for n in names if n not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; use one of {', '.join(STAGES)} (or a comma list)")
        last = max(STAGES.index(n) for n in names)
        return STAGES[: last + 1]

    @property
    def last_stage(self) -> str:
        return self.stages[-1]

    def pipeline_defaults(self) -> dict[str, Any]:
        """The nested pipeline settings this config sizes (below config files and overrides)."""
        return {
            "simulate": {"N": self.N, "object": {"size": self.object_size}, "scan": {"n_images": self.n_images}},
            "train": {"epochs": self.epochs, "model": {"n_filters_scale": self.n_filters_scale}},
        }
