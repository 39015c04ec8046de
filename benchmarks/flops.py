"""Analytic floating-point operation counts of the PINN, per diffraction pattern (benchmarks/README.md#cost-accounting).

Counted from the *built* model, so they follow the architecture, ``N``, ``gridsize``,
``n_filters_scale`` and the input channels actually in use. The iterative engines' counts are in
:mod:`benchmarks.flops_iterative`, with the same conventions:

* one FLOP is one real add, multiply, compare or elementary function (exp, log, sin, sqrt, …):
  the convention of TensorFlow's profiler; a multiply-add is 2;
* a ``Conv2D`` layer costs ``2·H·W·C_in·C_out·k_h·k_w`` (``H×W`` its output) plus ``H·W·C_out``
  for its bias and as much for its activation (TensorFlow's own count of ``Conv2D``, checked in
  tests/test_costs.py); a ``Dense`` layer ``2·C_in·C_out`` per position, bias and activation alike;
* a complex ``N×N`` 2-D FFT costs ``5·N²·log2(N²)`` (the radix-2 count);
* complex arithmetic: multiply 6, add 2, times a real 2, ``|z|²`` 3, ``|z|`` 4, divide 11;
* copies, transposes, gathers, shifts, concatenation, up-sampling and space/depth folds cost 0;
* **a training step** costs 3 × its forward pass (network → physics layers → loss): the backward
  pass of every layer is about two products of the forward's size (the input gradient and the
  weight gradient; an FFT's adjoint is an FFT), plus the Adam update, :data:`ADAM_PER_PARAMETER`
  FLOPs per trainable parameter, shared by the patterns of the batch; a per-group ePIE input
  (``model.estimate = "group"``) is computed once per step and not differentiated.

Per pattern means per group divided by its ``gridsize²`` members. Inference runs the features, the
network and the complex patch assembly only (no forward model); the global-estimate pre-pass is a
separate cost per scan (:func:`benchmarks.flops_iterative.prepass_flops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

COMPLEX_MUL, COMPLEX_ADD, COMPLEX_BY_REAL, COMPLEX_ABS2, COMPLEX_ABS, COMPLEX_DIV = 6, 2, 2, 3, 4, 11
ADAM_PER_PARAMETER = 12
"""Adam per parameter and step: two moment updates (3 + 4), the bias-corrected step and its
square root, division and subtraction (5)."""
TRAIN_STEP_FACTOR = 3
"""A training step = forward + backward ≈ 3 × the forward pass."""

LAMBDA_PER_ELEMENT = {"fold": 0, "estimate": 10, "amplitude": 2, "phase": 2}
"""FLOPs per output element of the built-in network's ``Lambda`` layers (``*_unfold`` are 0):
space-to-depth is a copy; the residual estimate's inverse head activations take about 20 FLOPs per
pixel for its two outputs; ``a_max·sigmoid`` and ``π·tanh`` take 2. Unknown ``Lambda`` layers
(a plugin architecture) count 1 per output element."""
FREE_LAYERS = {"InputLayer", "UpSampling2D", "Concatenate", "Reshape", "Permute", "Flatten", "Dropout",
               "ZeroPadding2D", "Cropping2D", "Identity"}


@dataclass(frozen=True)
class Flops:
    """A FLOP count split by kind: convolutions (or other products), FFTs, everything elementwise."""

    conv: float = 0.0
    fft: float = 0.0
    elementwise: float = 0.0

    @property
    def total(self) -> float:
        return self.conv + self.fft + self.elementwise

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.conv + other.conv, self.fft + other.fft, self.elementwise + other.elementwise)

    def __mul__(self, factor: float) -> Flops:
        return Flops(self.conv * factor, self.fft * factor, self.elementwise * factor)

    __rmul__ = __mul__

    def as_dict(self) -> dict[str, float]:
        return {"conv": self.conv, "fft": self.fft, "elementwise": self.elementwise, "total": self.total}


def fft2_flops(N: int) -> float:
    """One complex ``N×N`` 2-D FFT: ``5·N²·log2(N²)``."""
    return 5.0 * N * N * math.log2(N * N)


def _elements(tensors: Any) -> int:
    """Elements per sample (batch axis left out) of a Keras tensor or a list of them."""
    if isinstance(tensors, (list, tuple)):
        return sum(_elements(t) for t in tensors)
    return math.prod(int(d) for d in tensors.shape[1:])


def layer_flops(layer: Any) -> Flops:
    """FLOPs of one Keras layer for one sample.

    Raises
    ------
    ValueError
        A layer type with no rule here (better than counting it as free).
    """
    kind = type(layer).__name__
    if kind in FREE_LAYERS:
        return Flops()
    out = _elements(layer.output)
    if kind in ("Conv2D", "Dense"):  # a product per output element and input tap, then bias and activation
        taps = int(layer.input.shape[-1]) * (math.prod(layer.kernel_size) if kind == "Conv2D" else 1)
        linear = getattr(layer.activation, "__name__", "") == "linear"
        return Flops(conv=2.0 * out * taps, elementwise=out * (int(layer.use_bias) + (0 if linear else 1)))
    if kind == "MaxPooling2D":
        return Flops(elementwise=out * (math.prod(layer.pool_size) - 1))  # compares per output
    if kind in ("Add", "Subtract", "Multiply"):
        return Flops(elementwise=out * (len(layer.input) - 1))
    if kind == "Activation":
        return Flops(elementwise=out)
    if kind == "Lambda":
        per = 0 if layer.name.endswith("_unfold") else LAMBDA_PER_ELEMENT.get(layer.name, 1)
        return Flops(elementwise=out * per)
    raise ValueError(f"no FLOP rule for Keras layer {layer.name!r} ({kind}); add one to benchmarks/flops.py")


def network_flops(network: Any, members: int) -> Flops:
    """Forward FLOPs of a Keras network per pattern: its per-sample total over ``members``
    patterns per sample (``gridsize²``)."""
    total = Flops()
    for layer in network.layers:
        total = total + layer_flops(layer)
    return total * (1.0 / members)


def group_estimate_flops(N: int, C: int, canvas: int, sweeps: int) -> Flops:
    """The per-group ePIE input (``model.estimate = "group"``) per pattern: ``sweeps`` visits of
    each member — extract (4 complex taps), illuminate, FFT, modulus replacement, inverse FFT,
    step, place (4 taps and a scatter-add) — and the canvas update."""
    block = (N + 1) ** 2
    taps = 4 * COMPLEX_MUL + 3 * COMPLEX_ADD
    per_pixel = taps + COMPLEX_MUL + (COMPLEX_ABS + 1 + COMPLEX_DIV) + COMPLEX_MUL + COMPLEX_ADD + COMPLEX_MUL
    per_visit = Flops(fft=2 * fft2_flops(N), elementwise=N * N * per_pixel + block * (taps + 2) + canvas**2 * COMPLEX_ADD)
    return per_visit * sweeps


def forward_model_flops(N: int, C: int, canvas: int | None) -> Flops:
    """The physics layers per pattern: group reassembly (``C > 1``: place the members and their
    support, divide, re-extract), illumination, FFT (and its 1/N), ``|·|²``, the scale."""
    pixels = N * N
    taps = 4 * COMPLEX_MUL + 3 * COMPLEX_ADD
    elementwise = pixels * (COMPLEX_MUL + COMPLEX_DIV + COMPLEX_MUL + 1)
    if C > 1 and canvas:
        place = 2 * (N + 1) ** 2 * (taps + 2)  # numerator and support, scatter-added (re, im)
        divide = canvas**2 * (1 + 1 + COMPLEX_DIV + 1) / C  # compare, where, divide, where
        elementwise += place + divide + pixels * taps
    return Flops(fft=fft2_flops(N), elementwise=elementwise)


POISSON_LOSS_PER_PIXEL = 9
"""``λ − k − k·(log(λ+ε) − log(k+ε))`` (8) and its share of the mean (1)."""
FEATURES_PER_PIXEL = 2
"""``√counts · input_scale``; the estimate channels are copies."""
PATCH_ASSEMBLY_PER_PIXEL = 4
"""``a·cos φ + i·a·sin φ``."""


def pinn_flops(model: Any, batch_size: int) -> dict[str, Any]:
    """FLOPs per pattern of a :class:`ptycho.models.pinn.PINN`: what inference computes, the
    training forward pass and the training step at ``batch_size`` groups (module docstring).

    Returns
    -------
    dict with ``Flops`` values ``network``, ``infer`` (features + network + patch assembly),
    ``forward`` (+ physics layers and loss) and ``train_step`` (3·forward + Adam), and
    ``n_parameters`` (trainable).
    """
    config, physics = model.config, model.physics
    N, C = int(physics.N), int(physics.C)
    network = network_flops(model.network, C)
    estimate = Flops()  # the group estimate: an input (no gradient flows back through it)
    if config.uses_group_estimate:
        estimate = group_estimate_flops(N, C, physics.canvas_size or N, int(config.epie_iterations))
    differentiated = Flops(elementwise=N * N * (FEATURES_PER_PIXEL + PATCH_ASSEMBLY_PER_PIXEL)) + network
    infer = estimate + differentiated
    physics_and_loss = forward_model_flops(N, C, physics.canvas_size) + Flops(elementwise=N * N * POISSON_LOSS_PER_PIXEL)
    n_parameters = int(sum(math.prod(int(d) for d in v.shape) for v in model.trainable_variables))
    adam = Flops(elementwise=ADAM_PER_PARAMETER * n_parameters / (batch_size * C))
    train_step = estimate + (differentiated + physics_and_loss) * TRAIN_STEP_FACTOR + adam
    return {"network": network, "infer": infer, "forward": infer + physics_and_loss, "train_step": train_step,
            "n_parameters": n_parameters, "N": N, "gridsize": int(physics.gridsize), "batch_size": batch_size}


def flops_record(counts: dict[str, Any]) -> dict[str, Any]:
    """:func:`pinn_flops`'s result as plain data (for a child's JSON result)."""
    return {k: (v.as_dict() if isinstance(v, Flops) else v) for k, v in counts.items()}
