"""The PINN's physics layers (docs/model.md#physics-layers), as differentiable TensorFlow functions.

Per group: place the ``C`` member patches on the group's own canvas at their offsets, average
them with the *same* support in numerator and denominator, re-extract each member's window, then
apply the shared forward model (:func:`ptycho.physics.operators.tf_ops.diffraction_intensity`, the
very function ``simulate`` uses). Reassembly is always per group: a batch is never merged into one
canvas.
"""

from __future__ import annotations

import math
from typing import Any

from ptycho._tf import tf as _tf
from ptycho.physics.operators.tf_ops import diffraction_intensity, extract_patches, place_patches

SUPPORT_FLOOR = 1e-6  # canvas pixels whose summed bilinear weight is below this are unsupported


def canvas_size(max_offset: float, N: int) -> int:
    """Side of a group canvas holding every member window: ``N + 2·ceil(max|offset|) + 2``
    (the +2 keeps the bilinear footprint of sub-pixel windows inside)."""
    return int(N + 2 * math.ceil(max_offset) + 2)


def canvas_positions(offset_x: Any, offset_y: Any, size: int) -> tuple[Any, Any]:
    """Member window centres on a ``size×size`` group canvas whose centre is the group centroid."""
    centre = (size - 1) / 2.0
    return offset_x + centre, offset_y + centre


def reassemble_groups(patches: Any, offset_x: Any, offset_y: Any, size: int) -> Any:
    """Overlap-average each group's member patches on its own canvas.

    Parameters
    ----------
    patches : (B, C, N, N) complex64
    offset_x, offset_y : (B, C) float, member offsets from the group centroid
    size : canvas side (see :func:`canvas_size`)

    Returns
    -------
    (B, size, size) complex64; pixels outside every member's support are exactly 0.
    """
    tf = _tf()
    px, py = canvas_positions(offset_x, offset_y, size)
    numerator = place_patches(patches, px, py, size, size)
    ones = tf.ones_like(patches)
    support = tf.math.real(place_patches(ones, px, py, size, size))
    covered = support > SUPPORT_FLOOR
    safe = tf.where(covered, support, tf.ones_like(support))
    return tf.where(covered, numerator / tf.complex(safe, tf.zeros_like(safe)), tf.zeros_like(numerator))


def group_consistent_patches(patches: Any, offset_x: Any, offset_y: Any, size: int) -> Any:
    """Reassemble each group and re-extract every member's window: ``(B, C, N, N)`` complex64."""
    px, py = canvas_positions(offset_x, offset_y, size)
    canvas = reassemble_groups(patches, offset_x, offset_y, size)
    return extract_patches(canvas, px, py, int(patches.shape[-1]))


def predicted_counts(patches: Any, offset_x: Any, offset_y: Any, probe: Any, size: int | None) -> Any:
    """Expected counts for each member: reassembly (``C > 1``), illumination, propagation.

    Parameters
    ----------
    patches : (B, C, N, N) complex64 object patches
    offset_x, offset_y : (B, C) float
    probe : (N, N) complex64, √counts; or (K, N, N) incoherent modes, whose counts add
    size : group canvas side, or None for ``C = 1`` (no reassembly)

    Returns
    -------
    (B, C, N, N) float32
    """
    if size is not None and patches.shape[1] > 1:
        patches = group_consistent_patches(patches, offset_x, offset_y, size)
    return diffraction_intensity(patches, probe)
