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


def per_group_loss(kind: str, predicted: Any, counts: Any, *, norm: float, epsilon: float, mask: Any = None) -> Any:
    """Mean loss per group ``(B,)``; ``norm`` divides the Poisson loss by the mean counts per pixel
    of a unit object (and the amplitude loss by its square root) so both read in O(1) units.

    ``mask`` ``(N, N)`` bool (True = valid pixel, docs/measured-data.md#masks) restricts the mean to
    valid pixels of the ``(B, N, N, C)`` counts: an invalid pixel is *selected away* (not multiplied
    by 0), so absurd counts there change neither the loss nor its gradient. (Non-finite ones would
    still poison the gradient through ``tf.where``; datasets refuse them, and the batches of
    :mod:`ptycho.data.pipeline` read masked pixels as 0 anyway.)"""
    tf = _tf()
    per_pixel = poisson_excess(predicted, counts, epsilon) if kind == "nll" else amplitude_abs_error(
        predicted, counts, epsilon)
    scale = norm if kind == "nll" else norm**0.5
    axes = list(range(1, len(predicted.shape)))
    if mask is None:
        return tf.reduce_mean(per_pixel, axis=axes) / scale
    valid = tf.broadcast_to(tf.reshape(tf.constant(mask, tf.bool), [1, *mask.shape, 1]), tf.shape(per_pixel))
    total = tf.reduce_sum(tf.where(valid, per_pixel, tf.zeros_like(per_pixel)), axis=axes)
    count = tf.reduce_sum(tf.cast(valid, per_pixel.dtype), axis=axes)
    return total / count / scale
