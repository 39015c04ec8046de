"""Physics-informed network inputs: the global rPIE or ML estimate of the whole scan
(:func:`input_estimate`, ``model.estimate = "global"``, the default), or a few ePIE iterations with
the known probe per group (:func:`epie_estimate`, ``"group"``).

Group estimate: starting from a unit object on the group's canvas, each iteration visits the ``C``
members in turn: form the exit wave ``P·O`` at the member's window, replace its far-field modulus by
the measured one, propagate back, and add the correction (step ``conj(P)/max|P|²``) into the canvas.
With ``C > 1`` this is a small ptychographic reconstruction that already uses the overlap inside the
group; with ``C = 1`` it is single-pattern retrieval with a known probe. The network then refines
the estimate with local convolutions instead of having to learn a global Fourier inverse. Uses
the TensorFlow backend of :mod:`ptycho.physics.operators`, so conventions cannot drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ptycho._tf import tf as _tf
from ptycho.physics.operators.tf_ops import back_propagate, extract_patches, place_patches, propagate

if TYPE_CHECKING:
    from ptycho.config.train import ModelConfig
    from ptycho.data.dataset import Dataset
    from ptycho.iterative.streaming import GlobalEstimate


def input_estimate(config: ModelConfig, dataset: Dataset) -> GlobalEstimate | None:
    """The global estimate the network reads for ``dataset``, or None if the model does not read it:
    ``config.global_passes`` rPIE passes, continued while the held-out misfit falls with
    ``config.estimate_patience``, or with ``config.estimate_engine`` ml, ``estimate_ml_iterations``
    ML iterations; seeded by ``config.seed``. Training and inference both call this, so the network
    always sees estimates made the same way."""
    if not config.uses_global_estimate:
        return None
    from ptycho.iterative.streaming import global_estimate

    if config.estimate_by_ml:
        return global_estimate(dataset, config.estimate_ml_iterations, folds=config.estimate_folds, engine="ml",
                               seed=config.seed)
    return global_estimate(dataset, config.global_passes, folds=config.estimate_folds, alpha=config.estimate_alpha,
                           batch_size=config.estimate_batch_size, patience=config.estimate_patience,
                           max_passes=config.estimate_max_passes, seed=config.seed)


def group_labels(config: ModelConfig, n_patterns: int) -> Any:
    """The folds groups must stay within (members share their estimate's fold), or None."""
    if not config.uses_global_estimate:
        return None
    from ptycho.iterative.streaming import estimate_folds

    return estimate_folds(n_patterns, config.estimate_folds, config.seed)


def epie_estimate(amplitudes: Any, probe: Any, offset_x: Any, offset_y: Any, canvas_size: int, iterations: int,
                  valid: Any = None) -> Any:
    """Object estimate of every group member from measured far-field amplitudes.

    Parameters
    ----------
    amplitudes : (B, C, N, N) float32, √counts, DC-centred
    probe : (N, N) complex64, √counts; or (K, N, N) incoherent modes (the modulus constraint then
        acts on their summed intensity, each mode's wave scaled alike, as in the iterative engines)
    offset_x, offset_y : (B, C) float, member offsets from the group centroid
    canvas_size : side of the group canvas (≥ N + 2·max|offset|)
    iterations : int ≥ 1
    valid : (N, N) bool, optional
        Valid detector pixels (DC-centred); elsewhere each wave keeps its own modulus.

    Returns
    -------
    (B, C, N, N) complex64: each member's window of the group estimate (≈ 1 where unlit).
    """
    tf = _tf()
    B, C, N = tf.shape(amplitudes)[0], int(amplitudes.shape[1]), int(amplitudes.shape[-1])
    centre = (canvas_size - 1) / 2.0
    px = tf.cast(offset_x, tf.float64) + centre
    py = tf.cast(offset_y, tf.float64) + centre
    modes = len(probe.shape) == 3
    intensity = tf.math.real(probe * tf.math.conj(probe))
    if modes:
        intensity = tf.reduce_sum(intensity, axis=0)
    step = tf.math.conj(probe) / tf.complex(tf.reduce_max(intensity), 0.0)
    canvas = tf.complex(tf.ones([B, canvas_size, canvas_size]), tf.zeros([B, canvas_size, canvas_size]))
    modulus = tf.complex(amplitudes, tf.zeros_like(amplitudes))
    keep = None if valid is None else tf.constant(np.asarray(valid, bool))

    def sweep(i: Any, canvas: Any) -> tuple[Any, Any]:
        for c in range(C):  # members in turn (ePIE), unrolled: C ≤ 16
            x, y = px[:, c:c + 1], py[:, c:c + 1]
            patch = extract_patches(canvas, x, y, N)  # (B, 1, N, N)
            exit_wave = probe * (patch[:, :, None] if modes else patch)  # (B, 1, [K,] N, N)
            farfield = propagate(exit_wave)
            measured = modulus[:, c:c + 1]
            if modes:  # the summed intensity takes the measured modulus, every mode scaled alike
                total = tf.sqrt(tf.reduce_sum(tf.math.real(farfield * tf.math.conj(farfield)), axis=2))
                target = farfield * (measured / tf.complex(tf.maximum(total, 1e-12), 0.0))[:, :, None]
            else:
                phase = farfield / tf.complex(tf.maximum(tf.abs(farfield), 1e-12), 0.0)
                target = measured * phase
            if keep is not None:  # unmeasured pixels: the wave keeps what it predicts
                target = tf.where(keep, target, farfield)
            update = step * (back_propagate(target) - exit_wave)
            if modes:
                update = tf.reduce_sum(update, axis=2)
            canvas = canvas + place_patches(update, x, y, canvas_size, canvas_size)
        return i + 1, canvas

    # a loop (not unrolled) so XLA compiles one sweep, whatever the iteration count
    _, canvas = tf.while_loop(lambda i, _: i < iterations, sweep, (tf.constant(0), canvas),
                              maximum_iterations=iterations)
    return extract_patches(canvas, px, py, N)
