"""The PINN: a network plus its physics (probe, photon scale, group canvas), all state owned by
the object, none at module level, so several models live side by side in one process."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho._tf import tf as _tf
from ptycho.config.train import ModelConfig
from ptycho.models.features import epie_estimate
from ptycho.models.physics import group_consistent_patches, predicted_counts
from ptycho.models.probe import ProbeVariables
from ptycho.physics.probe import probe_energy
from ptycho.registry import Components


@dataclass(frozen=True)
class PhysicsSettings:
    """What the physics layers need besides the network, fixed when a model is created.

    ``input_scale`` maps √counts to network inputs of O(1): ``N / √(Σ|P|²)``, from the probe gauge
    (docs/conventions.md#photon-gauge), so a dataset recorded with the same probe and dose is normalised identically.
    ``canvas_size`` is the group canvas side (None for ``gridsize = 1``).
    """

    N: int
    gridsize: int
    probe_photons: float
    input_scale: float
    canvas_size: int | None

    @property
    def C(self) -> int:
        return self.gridsize**2

    @property
    def counts_norm(self) -> float:
        """Mean counts per pixel of a unit-amplitude object: ``Σ|P|² / N²``."""
        return self.probe_photons / self.N**2

    @classmethod
    def from_probe(cls, probe: np.ndarray, gridsize: int, canvas_size: int | None) -> "PhysicsSettings":
        N = int(probe.shape[-1])
        photons = probe_energy(probe)
        return cls(N, gridsize, photons, N / math.sqrt(photons), canvas_size if gridsize > 1 else None)


class PINN:
    """Network, probe and scale, with the forward path used in training and inference.

    Parameters
    ----------
    config : resolved ModelConfig (``N`` and ``gridsize`` set)
    physics : PhysicsSettings
    probe : (N, N) complex64 initial probe, √counts
    components : where the architecture is looked up (``ptycho_models``)
    """

    def __init__(self, config: ModelConfig, physics: PhysicsSettings, probe: np.ndarray, components: Components):
        tf = _tf()
        spec, _ = components.models.get(config.architecture, field_name="model.architecture")
        self.config = config
        self.physics = physics
        self.network = spec.build(config)
        self.probe_variables = ProbeVariables(probe, config.probe_trainable, config.probe_support_radius_frac)
        self.scale = tf.Variable(1.0, trainable=config.scale_trainable, name="scale_correction")
        self.valid_pixels: np.ndarray | None = None
        """(N, N) bool detector mask of the data in hand (set by train/infer, not stored in a bundle):
        the group estimate keeps its own modulus on invalid pixels."""

    @property
    def probe(self) -> Any:
        """The probe in use, ``Σ|P|² = physics.probe_photons`` (:mod:`ptycho.models.probe`)."""
        return self.probe_variables.value()

    @property
    def network_variables(self) -> list[Any]:
        """What the network's optimiser trains: the weights and the optional scale correction."""
        return list(self.network.trainable_variables) + ([self.scale] if self.scale.trainable else [])

    @property
    def probe_trainable_variables(self) -> list[Any]:
        """What the probe's own optimiser trains (empty unless ``probe_trainable``)."""
        return self.probe_variables.variables if self.probe_variables.trainable else []

    @property
    def trainable_variables(self) -> list[Any]:
        return self.network_variables + self.probe_trainable_variables

    @property
    def physics_variables(self) -> list[Any]:
        return [*self.probe_variables.variables, self.scale]

    def features(self, counts: Any, offset_x: Any, offset_y: Any, estimate: Any, canvas_size: int | None = None) -> Any:
        """Network input from counts ``(B, N, N, C)``, member offsets ``(B, C)`` and the members'
        windows of the global estimate ``(B, N, N, 2C)`` (Re then Im; ignored unless the model uses
        it): ``√counts · input_scale``, then the real and imaginary parts of the estimate in use,
        global or per group (ePIE) → ``(B, N, N, k·C)``. ``canvas_size``
        overrides the trained group canvas for groups spread wider than the training groups (any
        size that holds every window gives the same result)."""
        tf = _tf()
        amplitudes = tf.sqrt(tf.maximum(counts, 0.0))
        channels = [amplitudes * self.physics.input_scale]
        if self.config.uses_group_estimate:
            size = canvas_size or self.physics.canvas_size or self.physics.N
            # an input, not a path for gradients: a trainable probe learns through the forward model
            # (and XLA cannot differentiate the estimate's loop)
            group = epie_estimate(tf.transpose(amplitudes, [0, 3, 1, 2]), tf.stop_gradient(self.probe),
                                  offset_x, offset_y, size, self.config.epie_iterations, valid=self.valid_pixels)
            group = tf.transpose(group, [0, 2, 3, 1])
            channels += [tf.math.real(group), tf.math.imag(group)]
        if self.config.uses_global_estimate:
            channels.append(estimate)
        return tf.concat(channels, axis=-1)

    def object_patches(self, counts: Any, offset_x: Any, offset_y: Any, estimate: Any, training: bool = False,
                       canvas_size: int | None = None) -> Any:
        """Complex object patches ``(B, C, N, N)`` from a batch (:mod:`ptycho.data.pipeline`)."""
        tf = _tf()
        features = self.features(counts, offset_x, offset_y, estimate, canvas_size)
        amplitude, phase = self.network(features, training=training)
        amplitude = tf.transpose(amplitude, [0, 3, 1, 2])
        phase = tf.transpose(phase, [0, 3, 1, 2])
        return tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))

    def reconstructed_patches(self, counts: Any, offset_x: Any, offset_y: Any, estimate: Any,
                              canvas_size: int | None = None, *, group_average: bool) -> Any:
        """The reconstruction of a batch, ``(B, C, N, N)`` complex: at gridsize > 1 with
        ``group_average``, each member's window of its group's overlap-averaged patches — what the
        loss compares with the counts (:func:`~ptycho.models.physics.group_consistent_patches`), the
        network's own patches being constrained only through that average where members overlap;
        otherwise the network's patches (:meth:`object_patches`)."""
        patches = self.object_patches(counts, offset_x, offset_y, estimate, canvas_size=canvas_size)
        if self.physics.C == 1 or not group_average:
            return patches
        return group_consistent_patches(patches, offset_x, offset_y, canvas_size or self.physics.canvas_size)

    def predict_counts(self, counts: Any, offset_x: Any, offset_y: Any, estimate: Any, training: bool = False) -> Any:
        """Predicted counts ``(B, N, N, C)`` for a batch (:mod:`ptycho.data.pipeline`): network →
        object patches → physics layers."""
        tf = _tf()
        patches = self.object_patches(counts, offset_x, offset_y, estimate, training=training)
        lam = predicted_counts(patches, offset_x, offset_y, self.probe, self.physics.canvas_size)
        return tf.transpose(lam, [0, 2, 3, 1]) * self.scale
