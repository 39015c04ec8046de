"""Maximum-likelihood engine: the Poisson likelihood of the counts plus a smoothness prior,
minimised by preconditioned conjugate gradients (in the spirit of Thibault & Guizar-Sicairos 2012,
"Maximum-likelihood refinement for coherent diffractive imaging", New J. Phys. 14, 063004).

**Objective** (counts ``I_j``, model ``λ_j = |Ψ_j|²``, ``Ψ_j = F(P · E_j O)`` as in
:mod:`ptycho.iterative.pie`)::

    L(O, P) = Σ_j Σ_q [λ_jq − I_jq · log(λ_jq + ε)]  +  μ · R(O)

``R`` is the smoothed total variation ``Σ_r √(|∇O(r)|² + η²)`` (``regulariser = "tv"``), the
quadratic gradient penalty ``Σ_r |∇O(r)|²`` (``"gradient"``) or nothing (``"none"``), with forward
differences on the canvas. The data term's Wirtinger gradient is exact and cheap: with the exit-wave
gradient ``χ_j = F⁻¹[(1 − I_j/(λ_j + ε)) · Ψ_j]``::

    ∂L/∂Ō = Σ_j E_jᵀ (P̄ · χ_j) + μ ∂R/∂Ō          ∂L/∂P̄ = Σ_j Ō_j · χ_j      (O_j = E_j O)

**One iteration** = one gradient pass over every position plus one line-search pass:

1. the object gradient is *preconditioned* by the illumination, ``s = g / ((1 − α)·D + α·max D)``
   with ``D = Σ_j E_jᵀ|P|²`` — the same denominator as rPIE's step, so one step moves every pixel
   about as far as its data allow; the probe gradient likewise by ``Σ_j|O_j|²`` (blend ``β``);
2. the search directions are Polak–Ribière conjugate (reset to steepest descent when they stop
   descending);
3. the step lengths come from one Newton step of ``L`` along the directions, the far field
   linearised (``Ψ + Σ_k t_k ΔΨ_k``), with Fisher curvature where the Newton curvature is not
   positive, times a damping learnt from the previous step (where its minimum actually lay);
4. the step is **safe**: the next gradient pass measures ``L``; if it rose, the step is undone and
   retried shorter (quadratic interpolation), and after :data:`MAX_BACKTRACKS` failures the
   directions restart from steepest descent at the step's start.

The patterns are visited ``batch_size`` at a time, in storage order: memory is the canvas (a few
copies) plus one batch of waves, and the result depends on ``batch_size`` only through float64
rounding. There is no randomness; the same data and options give the same object.

The regulariser and its default, dose-aware weight: :mod:`ptycho.iterative.regularisers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptycho.config.iterative import IterativeConfig
from ptycho.errors import NumericalError
from ptycho.iterative.regularisers import default_regulariser_weight, regulariser_terms
from ptycho.physics.operators.geometry import Windows, block_extent
from ptycho.physics.operators.numpy_ops import backfield, extract, farfield, place

__all__ = ["MaximumLikelihood"]

EPS_COUNTS = 1e-6
"""``ε`` of ``log(λ + ε)``, in counts: keeps the likelihood finite where the model predicts nothing."""
MAX_BACKTRACKS = 20
"""Shorter trials of a step that raised the objective before the engine restarts from its start."""
DAMPING_RANGE = (0.05, 2.0)
"""Bounds of the learnt fraction of the Newton step: the Poisson likelihood is far from quadratic
where the model nears zero counts, so its Newton step along a direction can be too long."""
OBJECTIVE_RTOL = 1e-10
"""A step is kept unless it raised the objective by more than this (relative): the float32 waves
make the summed likelihood uncertain at about this level."""


@dataclass(frozen=True)
class _Point:
    """What a gradient pass measured at one estimate."""

    objective: float
    sq_error: float  # Σ (|Ψ| − √I)²
    g_obj: np.ndarray  # (H, W) complex128, ∂L/∂Ō
    g_probe: np.ndarray | None  # (N, N) complex128, ∂L/∂P̄ (with probe_update)
    object_power: np.ndarray | None  # (N, N) float64, Σ_j |O_j|² (with probe_update)


@dataclass(frozen=True)
class _Step:
    """The step taken from ``start`` (kept to undo it) and its directions."""

    start_object: np.ndarray
    start_probe: np.ndarray
    start: _Point
    d_obj: np.ndarray
    d_probe: np.ndarray | None
    lengths: np.ndarray  # (k,) step length per direction
    slope: float  # dL/ds at s = 0 along s·lengths (negative)
    descent: float  # Re⟨g, s⟩ at the start (Polak–Ribière denominator of the next step)


class MaximumLikelihood:
    """The ML engine's state across the iterations on one scan: the last step, to undo or extend it.

    Parameters
    ----------
    counts : (M, N, N) float32
        Photon counts in the unshifted FFT layout (DC at ``[0, 0]``).
    windows : Windows
        The positions on the working canvas.
    canvas_shape : (H, W)
    probe : (N, N) complex64
        The initial probe (its illumination sets the preconditioner and the default weight).
    config : IterativeConfig
        ``engine = "ml"``; ``alpha``/``beta`` blend the preconditioners, ``batch_size`` patterns
        are held at once, ``regulariser`` and ``regulariser_weight`` set the prior.
    valid : (N, N) bool, optional
        Detector pixels that count, in the unshifted layout
        (:func:`~ptycho.iterative.modulus.fft_valid`); the others leave the likelihood.
    """

    def __init__(self, counts: np.ndarray, windows: Windows, canvas_shape: tuple[int, int], probe: np.ndarray,
                 config: IterativeConfig, valid: np.ndarray | None = None) -> None:
        self.counts = counts
        self.valid = None if valid is None else np.asarray(valid, np.float32)
        self.windows = windows
        self.shape = canvas_shape
        self.cfg = config
        illumination = place(np.broadcast_to(np.abs(probe) ** 2, (len(windows), windows.N, windows.N)),
                             windows, canvas_shape)
        weight = config.regulariser_weight
        self.weight = default_regulariser_weight(illumination, config.support_fraction) if weight is None else weight
        self.kind = "none" if self.weight == 0 else config.regulariser
        self.precondition = 1.0 / ((1.0 - config.alpha) * illumination + config.alpha * float(illumination.max()))
        self._step: _Step | None = None
        self._damping = 1.0  # fraction of the Newton step taken, learnt from the previous steps

    def iterate(self, obj: np.ndarray, probe: np.ndarray) -> float:
        """One iteration: update ``obj`` (and, with ``probe_update``, ``probe``) in place; return
        ``Σ(|Ψ| − √I)²`` at the estimate the iteration started from.

        Raises
        ------
        NumericalError
            The objective is not finite at the start (bad data).
        """
        point = self._gradient_pass(obj, probe)
        restart = False
        if self._step is not None:
            point, restart = self._check_step(obj, probe, point)
        if not math.isfinite(point.objective):
            raise NumericalError("ml: the likelihood is not finite; check the counts for NaN/Inf or negative values")
        d_obj, d_probe, descent = self._directions(point, restart)
        grad, hess = self._line_derivatives(obj, probe, d_obj, d_probe)
        lengths = self._damping * _solve_step(grad, hess)
        self._step = _Step(obj.copy(), probe.copy(), point, d_obj, d_probe, lengths, float(grad @ lengths), descent)
        self._apply(obj, probe, d_obj, d_probe, lengths)
        return point.sq_error

    def _check_step(self, obj: np.ndarray, probe: np.ndarray, point: _Point) -> tuple[_Point, bool]:
        """Keep the last step if it lowered the objective, else backtrack along it (quadratic
        interpolation from ``L(0)``, ``L'(0)`` and the last trial); adapt the damping of the next
        Newton step to where the objective's minimum along this step lay. Returns the accepted
        point and whether the directions must restart."""
        step = self._step
        start, s = step.start.objective, 1.0
        for _ in range(MAX_BACKTRACKS):
            curvature = (point.objective - start - step.slope * s) / s**2  # of L(s) ≈ L0 + slope·s + c·s²
            best = -step.slope / (2 * curvature) if math.isfinite(curvature) and curvature > 0 else 2.0 * s
            if _lower(point.objective, start):
                self._damping = float(np.clip(self._damping * best, DAMPING_RANGE[0], DAMPING_RANGE[1]))
                return point, False
            s_new = float(np.clip(best, 0.1 * s, 0.5 * s)) if math.isfinite(best) else 0.5 * s
            obj[...], probe[...] = step.start_object, step.start_probe
            self._apply(obj, probe, step.d_obj, step.d_probe, s_new * step.lengths)
            s = s_new
            point = self._gradient_pass(obj, probe)
        obj[...], probe[...] = step.start_object, step.start_probe  # nothing lower along it: restart there
        self._damping = DAMPING_RANGE[0]
        return step.start, True

    @staticmethod
    def _apply(obj: np.ndarray, probe: np.ndarray, d_obj: np.ndarray, d_probe: np.ndarray | None, t: np.ndarray) -> None:
        obj += (t[0] * d_obj).astype(np.complex64)
        if d_probe is not None:
            probe += (t[1] * d_probe).astype(np.complex64)

    def _gradient_pass(self, obj: np.ndarray, probe: np.ndarray) -> _Point:
        """The objective, the modulus error and the gradients at ``(obj, probe)``."""
        g_obj = np.zeros(self.shape, np.complex128)
        g_probe = power = None
        if self.cfg.probe_update:
            g_probe, power = np.zeros(probe.shape, np.complex128), np.zeros(probe.shape, np.float64)
        nll = sq_error = 0.0
        for batch, counts in self._batches():
            patches = extract(obj, batch)
            far = farfield(patches * probe)
            model = np.abs(far) ** 2
            terms = model - counts * np.log(model + EPS_COUNTS)
            diff = np.sqrt(model) - np.sqrt(counts)
            weight = 1.0 - counts / (model + EPS_COUNTS)
            if self.valid is not None:  # masked detector pixels leave the likelihood
                terms, diff, weight = terms * self.valid, diff * self.valid, weight * self.valid
            nll += float(np.sum(terms, dtype=np.float64))
            sq_error += float(np.vdot(diff.ravel(), diff.ravel()))
            chi = backfield(far * weight)  # exit-wave gradient
            r0, r1, c0, c1 = block_extent(batch)
            g_obj[r0:r1, c0:c1] += place(np.conj(probe) * chi, batch.shifted(-r0, -c0), (r1 - r0, c1 - c0))
            if g_probe is not None:
                g_probe += np.sum(np.conj(patches) * chi, axis=0)
                power += np.sum(np.abs(patches) ** 2, axis=0)
        value, g_reg, _, _ = regulariser_terms(obj, self.kind)
        if g_reg is not None:
            g_obj += self.weight * g_reg
        return _Point(nll + self.weight * value, sq_error, g_obj, g_probe, power)

    def _directions(self, point: _Point, restart: bool) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Preconditioned Polak–Ribière directions (object, probe) and ``Re⟨g, s⟩``."""
        s_obj = self.precondition * point.g_obj
        s_probe = None
        if point.g_probe is not None:
            power = point.object_power
            s_probe = point.g_probe / ((1.0 - self.cfg.beta) * power + self.cfg.beta * float(power.max()))
        descent = _dot(point.g_obj, s_obj, point.g_probe, s_probe)
        d_obj, d_probe = -s_obj, (None if s_probe is None else -s_probe)
        last = self._step
        if last is None or restart or last.descent <= 0:
            return d_obj, d_probe, descent
        g_change_probe = None if s_probe is None else point.g_probe - last.start.g_probe
        beta = max(0.0, _dot(point.g_obj - last.start.g_obj, s_obj, g_change_probe, s_probe) / last.descent)
        cand_obj = d_obj + beta * last.d_obj
        cand_probe = None if d_probe is None else d_probe + beta * last.d_probe
        if _dot(point.g_obj, cand_obj, point.g_probe, cand_probe) < 0:  # still descending
            return cand_obj, cand_probe, descent
        return d_obj, d_probe, descent

    def _line_derivatives(self, obj: np.ndarray, probe: np.ndarray, d_obj: np.ndarray,
                          d_probe: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Gradient ``(k,)`` and Hessian ``(k, k)`` of the objective in the step lengths ``t`` of
        the ``k`` directions at ``t = 0``, the far field linearised in ``t``."""
        k = 1 if d_probe is None else 2
        grad = np.zeros(k)
        newton, fisher = np.zeros((k, k)), np.zeros((k, k))
        d_obj64 = d_obj.astype(np.complex64)
        for batch, counts in self._batches():
            patches = extract(obj, batch)
            far = farfield(patches * probe)
            changes = [farfield(extract(d_obj64, batch) * probe)]
            if d_probe is not None:
                changes.append(farfield(patches * d_probe.astype(np.complex64)))
            model = np.abs(far) ** 2 + EPS_COUNTS
            weight = 1.0 - counts / model
            slopes = [2.0 * (np.conj(far) * c).real for c in changes]  # dλ/dt_k
            if self.valid is not None:
                weight, slopes = weight * self.valid, [slope * self.valid for slope in slopes]
            for a in range(k):
                grad[a] += float(np.sum(weight * slopes[a], dtype=np.float64))
                for b in range(a, k):
                    # Newton: λ''(1 − I/λ) + I·λ'²/λ², λ'' = 2 Re(ΔΨ̄_a ΔΨ_b); Fisher: λ'²/λ (E[I] = λ)
                    fisher[a, b] += float(np.sum(slopes[a] * slopes[b] / model, dtype=np.float64))
                    newton[a, b] += float(np.sum(counts * slopes[a] * slopes[b] / model**2, dtype=np.float64))
                    newton[a, b] += 2.0 * float(np.sum(weight * (np.conj(changes[a]) * changes[b]).real, dtype=np.float64))
        newton, fisher = np.triu(newton) + np.triu(newton, 1).T, np.triu(fisher) + np.triu(fisher, 1).T
        hess = newton if np.all(np.linalg.eigvalsh(newton) > 0) else fisher
        _, _, first, second = regulariser_terms(obj, self.kind, d_obj)
        grad[0] += self.weight * first
        hess[0, 0] += self.weight * second
        return grad, hess

    def _batches(self):
        """``(windows, counts)`` of ``batch_size`` patterns at a time, in storage order."""
        size = self.cfg.batch_size
        for start in range(0, len(self.windows), size):
            index = np.arange(start, min(start + size, len(self.windows)))
            yield self.windows.take(index), self.counts[start:start + size]


def _lower(value: float, reference: float) -> bool:
    """``value`` is finite and not above ``reference`` beyond float rounding of a large sum."""
    return math.isfinite(value) and value <= reference + OBJECTIVE_RTOL * abs(reference)


def _dot(a: np.ndarray, b: np.ndarray, a_probe: np.ndarray | None = None, b_probe: np.ndarray | None = None) -> float:
    """``Re⟨a, b⟩`` over the object and, when given, the probe parts."""
    value = float(np.vdot(a, b).real)
    if a_probe is not None and b_probe is not None:
        value += float(np.vdot(a_probe, b_probe).real)
    return value


def _solve_step(grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """``t = −H⁻¹ g`` for a positive curvature, else the per-direction steps ``−g_k / H_kk``
    (0 where even those are not positive)."""
    if np.all(np.isfinite(hess)) and np.all(np.isfinite(grad)):
        if len(grad) > 1 and np.linalg.det(hess) > 1e-12 * np.prod(np.diag(hess)) and np.all(np.diag(hess) > 0):
            return -np.linalg.solve(hess, grad)
        diag = np.diag(hess)
        return np.where(diag > 0, -grad / np.where(diag > 0, diag, 1.0), 0.0)
    return np.zeros_like(grad)
