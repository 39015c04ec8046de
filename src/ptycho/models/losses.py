"""Losses on counts (docs/model.md#loss), normalised so values are O(1) whatever the dose.

The Poisson loss is written as the deviance ``λ − k − k·log((λ+ε)/(k+ε))``: the negative
log-likelihood ``λ − k·log(λ+ε)`` minus its value at ``λ = k``. Same gradient, but its minimum is
0, so it reads directly as "excess over the best possible fit" and keeps float32 precision at high
counts.
"""

from __future__ import annotations

from typing import Any

from ptycho._tf import tf as _tf


def poisson_excess(predicted: Any, counts: Any, epsilon: float) -> Any:
    """Per-pixel Poisson NLL minus its minimum: ``λ − k − k·log((λ+ε)/(k+ε))`` (≥ 0)."""
    tf = _tf()
    return predicted - counts - counts * (tf.math.log(predicted + epsilon) - tf.math.log(counts + epsilon))


def amplitude_abs_error(predicted: Any, counts: Any, epsilon: float) -> Any:
    """Per-pixel ``|√λ − √k|``."""
    tf = _tf()
    return tf.abs(tf.sqrt(predicted + epsilon) - tf.sqrt(counts))


def per_group_loss(kind: str, predicted: Any, counts: Any, *, norm: float, epsilon: float) -> Any:
    """Mean loss per group ``(B,)``; ``norm`` divides the Poisson loss by the mean counts per pixel
    of a unit object (and the amplitude loss by its square root) so both read in O(1) units."""
    tf = _tf()
    axes = list(range(1, len(predicted.shape)))
    if kind == "nll":
        return tf.reduce_mean(poisson_excess(predicted, counts, epsilon), axis=axes) / norm
    return tf.reduce_mean(amplitude_abs_error(predicted, counts, epsilon), axis=axes) / norm**0.5
