"""Configuration of the PINN (``model``) and of ``ptycho train``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ptycho.config.base import StrictModel
from ptycho.config.positions import PositionRefinementOptions

SUPPORTED_N = (32, 64, 128, 256)
RESIDUAL_MIN_PHOTONS = 1e5
"""Photons per pattern from which the decoders add to the global estimate by default. Measured at
two doses (docs/model.md#input-estimate): at 1e4 (lines, N=64) the residual network stayed near its
noisy input (phase SSIM 0.771 against 0.863 reading it only); at 1e6 (the realistic scenario, N=128)
the network that only reads the estimate never learnt to pass it on (phase SSIM 0.075 against 0.769
residual, 3 epochs). 1e5 is between the two; nothing was measured there."""
ML_ESTIMATE_MAX_PHOTONS = 1e5
"""Photons per pattern below which the global estimate is made by maximum likelihood by default
(one-mode probes). Measured at 1e4 (lines, N=64, 10 epochs, docs/model.md#input-estimate): the
network reading an ML estimate of 200 iterations scored phase / amplitude SSIM 0.910 / 0.898
(100 iterations: 0.881 / 0.895) against 0.868 / 0.853 reading rPIE's (amplitude mean ratio 1.000
against 1.031); at 1e9 the network reading rPIE's
estimate reaches 0.965, and ML was not tried there. Nothing was measured between; 1e5 is the
boundary the residual decision already uses."""


class ModelConfig(StrictModel):
    """The network and its physics layers. ``N`` and ``gridsize`` default to the dataset's."""

    architecture: str = "cnn"
    N: int | None = Field(default=None, description="pattern size; must match the data")
    gridsize: int | None = Field(default=None, ge=1, le=4, description="default: the dataset's gridsize")
    n_filters_scale: int = Field(default=2, ge=1, le=8)
    amplitude_max: float = Field(default=2.0, gt=0, description="amplitude head: a_max·sigmoid; unless set, "
                                 "training raises it to twice the largest window amplitude the data show")
    phase_activation: Literal["linear", "pi_tanh"] = Field(
        default="linear", description="phase head: the pre-activation itself (no bound: cos/sin wrap it), or "
                                      "π·tanh (saturates where a patch's phase crosses ±π)")
    probe_trainable: bool = Field(default=False, description="refine the probe jointly with the network "
                                  "(its own optimiser; set by train.refine_probe)")
    probe_support_radius_frac: float | None = Field(
        default=None, gt=0, le=1, description="refined probe: zero outside this disk radius / N (none: no support)")
    scale_trainable: bool = Field(default=False, description="one trainable scalar on predicted counts")
    seed: int = Field(default=0, ge=0, description="weight initialisation seed (train sets it from its seed)")
    skip_connections: bool = Field(default=True, description="U-Net skips from encoder to decoders")
    estimate: Literal["global", "group", "none"] = Field(
        default="global",
        description="physics-informed input: windows of a global rPIE estimate of the whole scan, a per-group "
                    "ePIE estimate (residual decoders), or none")
    estimate_residual: bool | None = Field(
        default=None, description="global estimate: the decoders add to it (zero-initialised last convolutions: "
                                  "the untrained network returns the estimate) instead of only reading it; unset: "
                                  f"on when a pattern holds at least {RESIDUAL_MIN_PHOTONS:g} photons (training "
                                  "decides from the data)")
    global_passes: int = Field(default=10, ge=1, le=50, description="rPIE passes of the global estimate (at least, "
                               "with estimate_patience)")
    estimate_max_passes: int = Field(
        default=40, ge=1, le=200, description="leave-fold-out global estimates: with estimate_patience, at most "
                                              "this many passes while the held-out misfit falls (never fewer "
                                              "than global_passes)")
    estimate_folds: int = Field(
        default=2, ge=0, le=8, description="leave-fold-out global estimates: each position reads an estimate made "
                                           "without its own fold's patterns (0: one estimate of every pattern)")
    estimate_patience: int = Field(
        default=3, ge=0, le=20, description="leave-fold-out global estimates: after global_passes, go on while the "
                                            "misfit of a fold's own (held-out) patterns falls, stop this many "
                                            "passes after it last fell and keep that best pass (0: global_passes "
                                            "only)")
    estimate_engine: Literal["rpie", "ml"] | None = Field(
        default=None, description="engine of the global estimate: rPIE passes, or maximum-likelihood iterations "
                                  "(Poisson, regularised; one-mode probes; holds the patterns an estimate is made from, "
                                  "(folds − 1)/folds of the scan, in memory); "
                                  f"unset: ml when a pattern holds fewer than {ML_ESTIMATE_MAX_PHOTONS:g} photons and "
                                  "the probe has one mode (training decides from the data), else rpie")
    estimate_ml_iterations: int = Field(default=200, ge=1, le=1000,
                                        description="ML iterations of the global estimate (estimate_engine = ml)")
    estimate_alpha: float = Field(default=0.1, gt=0, le=1, description="rPIE alpha of the global estimate")
    estimate_batch_size: int = Field(default=64, ge=1, description="rPIE minibatch of the global estimate")
    epie_iterations: int = Field(default=5, ge=0, le=100, description="ePIE sweeps of the group estimate (0 = none)")

    @property
    def uses_group_estimate(self) -> bool:
        return self.estimate == "group" and self.epie_iterations > 0

    @property
    def uses_global_estimate(self) -> bool:
        return self.estimate == "global"

    @property
    def estimate_by_ml(self) -> bool:
        """The global estimate is made by maximum likelihood (``estimate_engine`` resolved to ml)."""
        return self.uses_global_estimate and self.estimate_engine == "ml"

    @property
    def input_channels(self) -> int:
        """Network input channels per group member: √counts, plus Re/Im of the estimate in use."""
        return 3 if self.uses_group_estimate or self.uses_global_estimate else 1

    @model_validator(mode="after")
    def _supported_size(self) -> "ModelConfig":
        if self.N is not None and self.N not in SUPPORTED_N:
            raise ValueError(f"N must be one of {', '.join(map(str, SUPPORTED_N))}")
        return self


class ClusterConfig(StrictModel):
    """How the workers of ``strategy: multiworker`` find each other, and how long they wait.

    Every worker runs the same training with the same config; TensorFlow's
    ``MultiWorkerMirroredStrategy`` keeps their weights identical and the chief (worker 0) writes.
    """

    resolver: Literal["tf_config", "slurm"] = Field(
        default="tf_config",
        description="where the cluster comes from: the TF_CONFIG environment variable, or the SLURM job step")
    slurm_port_base: int = Field(default=8888, ge=1024, le=65535,
                                 description="slurm: first port on each node (one port per task on the node)")
    startup_timeout_s: float = Field(default=300.0, gt=0,
                                     description="how long a worker waits for all the others to join at start")
    heartbeat_timeout_s: float = Field(default=10.0, gt=0,
                                       description="a worker silent this long is declared lost and training stops")
    collective_timeout_s: float | None = Field(
        default=None, gt=0,
        description="also stop when one gradient exchange waits this long (catches a worker that is alive but "
                    "stuck); off by default: TensorFlow keeps one thread per exchange for this long")


class TrainConfig(PositionRefinementOptions):
    """Everything that determines a training run (with the dataset and seed, a run is repeatable)."""

    model: ModelConfig = ModelConfig()
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=16, gt=0, description="groups per optimizer step, summed over every replica "
                                                          "and worker (the global batch)")
    learning_rate: float = Field(default=1e-3, gt=0, description="Adam's, for the mean gradient over the global "
                                                                 "batch: unchanged by the number of workers")
    refine_probe: bool | None = Field(
        default=None, description="refine the probe with the network (default: when the dataset marks its probe as a guess)")
    probe_learning_rate: float = Field(
        default=3e-3, gt=0, description="the probe optimiser's step, relative to the probe's RMS value")
    probe_file: str | None = Field(
        default=None, description="start from this probe instead of the dataset's (any file a file: probe accepts)")
    probe_init_passes: int = Field(
        default=20, ge=0, le=1000, description="rPIE passes with probe update that initialise a refined probe")
    refine_positions: bool = Field(
        default=False, description="refine the scan's positions (bounded sub-pixel offsets, mean shift removed) in "
                                   "rPIE passes before training; groups and the network's input use the refined ones")
    loss: Literal["nll", "mae"] = "nll"
    validation_split: float = Field(default=0.1, ge=0, lt=1)
    n_groups: int | None = Field(default=None, gt=0, description="default: one group per position")
    neighbors: int | None = Field(default=None, gt=0, description="draw members from the K nearest")
    oversample: bool = False
    seed: int = Field(default=0, ge=0)
    reduce_lr_patience: int = Field(default=3, ge=1)
    reduce_lr_factor: float = Field(default=0.5, gt=0, lt=1)
    min_learning_rate: float = Field(default=1e-5, gt=0)
    early_stopping_patience: int | None = Field(default=8, ge=1)
    strategy: Literal["default", "mirrored", "multiworker"] = "default"
    cluster: ClusterConfig = ClusterConfig()
    jit: bool = Field(default=False, description="XLA-compile the training step (off: faster on the CPU, benchmarks/RESULTS.md)")
    max_nan_recoveries: int = Field(default=4, ge=0)
    loss_epsilon: float = Field(default=1e-8, gt=0, description="ε inside the Poisson log")
    mask: Path | None = Field(default=None, description="valid-pixel mask file replacing the dataset's mask")
