"""The PINN's probe as trainable variables, with the photon gauge held exactly.

The probe is parametrised as ``P = √photons · S⊙Q / ‖S⊙Q‖`` with ``Q`` the variables (real and
imaginary parts, initialised to ``P₀ / rms(P₀)`` so they are O(1)), ``S`` an optional disk support
and ``‖·‖`` the norm over every pixel (and every mode). So:

* ``Σ|P|² = photons`` always (the gauge that makes amplitudes absolute, docs: conventions); the
  gradient reaching ``Q`` has no component that changes the power;
* an optimiser step of size ``η`` on ``Q`` changes the probe by about ``η`` of its own RMS value,
  whatever the dose — the step is relative to the probe, not to the network's learning rate.

A leading mode axis ``(K, N, N)`` (mixed-state probes) is carried through unchanged; the norm runs
over all modes, so their summed power is the gauge.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho._tf import tf as _tf
from ptycho.physics.probe import probe_energy


def disk_support(N: int, radius_frac: float | None) -> np.ndarray:
    """``(N, N)`` float32: 1 inside the disk of radius ``radius_frac·N`` about the window centre
    ``(N−1)/2``, else 0; all ones without a radius."""
    if radius_frac is None:
        return np.ones((N, N), np.float32)
    yy, xx = np.mgrid[0:N, 0:N] - (N - 1) / 2.0
    return (np.hypot(yy, xx) <= radius_frac * N).astype(np.float32)


class ProbeVariables:
    """Trainable probe with its power fixed at ``photons`` (module docstring).

    Parameters
    ----------
    probe : (N, N) or (K, N, N) complex
        Initial probe, √counts.
    trainable : bool
    support_radius_frac : float, optional
        Disk support radius as a fraction of ``N`` (the probe is zero outside).
    """

    def __init__(self, probe: np.ndarray, trainable: bool, support_radius_frac: float | None = None):
        tf = _tf()
        probe = np.asarray(probe, np.complex64)
        N = int(probe.shape[-1])
        self.photons = probe_energy(probe)
        rms = np.sqrt(self.photons / probe.size) or 1.0
        q = probe / np.complex64(rms)
        self.support = disk_support(N, support_radius_frac)
        self.real = tf.Variable(q.real, trainable=trainable, name="probe_real")
        self.imag = tf.Variable(q.imag, trainable=trainable, name="probe_imag")
        self._fixed = None if trainable else tf.constant(probe)  # a fixed probe is used exactly as given

    @property
    def variables(self) -> list[Any]:
        return [self.real, self.imag]

    @property
    def trainable(self) -> bool:
        return bool(self.real.trainable)

    def value(self) -> Any:
        """The probe ``P`` (complex64, the shape it was created with), ``Σ|P|² = photons``."""
        tf = _tf()
        if self._fixed is not None:
            return self._fixed
        support = tf.constant(self.support)
        re, im = self.real * support, self.imag * support
        norm = tf.sqrt(tf.reduce_sum(re * re + im * im))
        factor = tf.cast(np.sqrt(self.photons), tf.float32) / tf.maximum(norm, 1e-30)
        return tf.complex(re * factor, im * factor)

    def numpy(self) -> np.ndarray:
        return np.asarray(self.value().numpy(), np.complex64)
