"""The built-in ``cnn`` architecture: an encoder and two decoders (amplitude, phase) (docs/model.md#network).

Built by a factory from a resolved :class:`~ptycho.config.train.ModelConfig`; no module-level
models or variables. Input ``(B, N, N, C·k)`` features (normalised √counts, optionally Re/Im of a
global or group estimate); output the amplitude ``a_max·sigmoid`` and the phase (radians, the
pre-activation itself by default, ``π·tanh`` with ``model.phase_activation = "pi_tanh"``) of the
``C`` object patches, ``(B, N, N, C)`` each. The phase is left unbounded because cos/sin wrap it
anyway, while a bounded head saturates for good wherever a patch's phase has to cross ±π: the
per-patch phase offset is free in the loss at gridsize 1, and once it drifts there the gradient
pushes the pre-activation outwards without end (docs/model.md#network).

Layout: a lossless 2×2 space-to-depth folds the pattern to ``N/2`` (the convolutions then run at
half resolution, the main saving), conv–conv–pool blocks go down to ``4×4``, and each decoder mirrors
them with upsample–conv blocks and a final depth-to-space back to ``N×N``.

With a physics estimate among the inputs the decoders can be *residual*: they add to the head
pre-activations of that estimate, and their last convolutions start at zero, so the untrained
network already returns the estimate and training only has to improve on it. Always for the
per-group ePIE estimate (``estimate = "group"``); for the global estimate when
``model.estimate_residual`` (by default when the data hold at least
:data:`~ptycho.config.train.RESIDUAL_MIN_PHOTONS` photons per pattern).
"""

from __future__ import annotations

import math
from typing import Any

from ptycho.config.train import ModelConfig

BASE_FILTERS = 16
BOTTLENECK = 8
ESTIMATE_CLIP = 1e-3


def encoder_filters(N: int, n_filters_scale: int) -> list[int]:
    """Filters per encoder level, doubling each level from ``16·n_filters_scale`` at ``N/2``."""
    levels = int(math.log2(N // 2 // BOTTLENECK))
    return [BASE_FILTERS * n_filters_scale * 2**i for i in range(levels)]


def build_cnn(config: ModelConfig) -> Any:
    """Build the uncompiled Keras model for a resolved config (``N`` and ``gridsize`` set)."""
    from ptycho._tf import tf

    tf()  # TensorFlow first, with its start-up chatter captured
    import keras
    from keras import layers, ops

    N, C = int(config.N), int(config.gridsize) ** 2
    residual = config.uses_group_estimate or (config.uses_global_estimate and bool(config.estimate_residual))
    filters = encoder_filters(N, config.n_filters_scale)
    seeds = iter(range(config.seed * 1000, config.seed * 1000 + 1000))

    def conv(f: int, name: str, activation: str | None = "relu", zero: bool = False) -> Any:
        init = "zeros" if zero else keras.initializers.GlorotUniform(seed=next(seeds))
        return layers.Conv2D(f, 3, padding="same", activation=activation, name=name, kernel_initializer=init)

    inputs = keras.Input((N, N, C * config.input_channels), name="features")
    x = layers.Lambda(lambda t: _space_to_depth(t), name="fold")(inputs)
    skips = []
    for level, f in enumerate(filters):
        x = conv(f, f"enc{level}_a")(x)
        x = conv(f, f"enc{level}_b")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    code = x

    def decoder(name: str) -> Any:
        y = code
        for level, f in reversed(list(enumerate(filters))):
            y = layers.UpSampling2D(2, name=f"{name}{level}_up")(y)
            if config.skip_connections:
                y = layers.Concatenate(name=f"{name}{level}_skip")([y, skips[level]])
            y = conv(f, f"{name}{level}_a")(y)
            y = conv(f, f"{name}{level}_b")(y)
        y = conv(4 * C, f"{name}_out", activation=None, zero=residual)(y)
        return layers.Lambda(lambda t: _depth_to_space(t), name=f"{name}_unfold")(y)

    a_max = float(config.amplitude_max)
    amp_pre, phase_pre = decoder("amp"), decoder("phase")
    if residual:
        # decoders refine the ePIE estimate in pre-activation space; zero-initialised last convs
        # make the untrained model return exactly the estimate
        base_amp, base_phase = layers.Lambda(lambda t: _estimate_preactivations(t, C, a_max, config.phase_activation),
                                             name="estimate")(inputs)
        amp_pre = layers.Add(name="amp_residual")([amp_pre, base_amp])
        phase_pre = layers.Add(name="phase_residual")([phase_pre, base_phase])
    amplitude = layers.Lambda(lambda t: a_max * ops.sigmoid(t), name="amplitude")(amp_pre)
    if config.phase_activation == "pi_tanh":
        phase = layers.Lambda(lambda t: math.pi * ops.tanh(t), name="phase")(phase_pre)
    else:
        phase = layers.Identity(name="phase")(phase_pre)
    return keras.Model(inputs, [amplitude, phase], name="cnn")


def _estimate_preactivations(features: Any, C: int, a_max: float, phase_activation: str) -> tuple[Any, Any]:
    """Inverse head activations of the ePIE estimate in ``features[..., C:3C]``:
    ``logit(|O|/a_max)`` and ``arg O`` (``atanh(arg O / π)`` for ``pi_tanh``), clipped away from
    the asymptotes."""
    from keras import ops

    re, im = features[..., C:2 * C], features[..., 2 * C:3 * C]
    p = ops.clip(ops.sqrt(re * re + im * im) / a_max, ESTIMATE_CLIP, 1 - ESTIMATE_CLIP)
    if phase_activation != "pi_tanh":
        return ops.log(p / (1 - p)), ops.arctan2(im, re)
    q = ops.clip(ops.arctan2(im, re) / math.pi, -1 + ESTIMATE_CLIP, 1 - ESTIMATE_CLIP)
    return ops.log(p / (1 - p)), 0.5 * ops.log((1 + q) / (1 - q))


def _space_to_depth(t: Any) -> Any:
    from ptycho._tf import tf

    return tf().nn.space_to_depth(t, 2)


def _depth_to_space(t: Any) -> Any:
    from ptycho._tf import tf

    return tf().nn.depth_to_space(t, 2)
