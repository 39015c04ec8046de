"""The ptychographic operators: one interface, a NumPy and a TensorFlow backend.

Both backends implement the same functions with the same conventions, and one contract test
(``tests/test_operators.py``) runs against each of them:

* ``extract_patches(images, x, y, N)``: the ``N×N`` window centred at each ``(x, y)``;
  images ``(B, H, W)``, positions ``(B, K)`` → ``(B, K, N, N)``.
* ``place_patches(patches, x, y, H, W)``: its exact adjoint (transpose), the sum of every
  window's bilinear footprint; ``(B, K, N, N)`` → ``(B, H, W)``.
* ``propagate(waves)`` / ``back_propagate(spectra)``: the unitary 2-D DFT over the last two axes
  with DC-centred far fields, and its inverse; ``(..., N, N)`` → ``(..., N, N)``.
* ``farfield_intensity(waves)``: ``|propagate(waves)|²``, real.
* ``diffraction_intensity(patches, probe)``: the expected counts of object windows under a probe
  in √counts, ``(N, N)`` coherent or ``(K, N, N)`` mixed-state (below).

**Mixed-state probes** (partial coherence; Thibault & Menzel 2013): a probe ``(K, N, N)`` holds
``K`` mutually incoherent modes, and the counts are the *incoherent* sum over modes,
``I = Σ_k |F(P_k · O)|²``, ``(..., N, N)`` out. Only ``diffraction_intensity`` knows about modes;
extraction, placement and the FFT pair act on the last two axes only, so callers that need the
per-mode exit waves (the iterative engines) form ``patches[..., None, :, :] · probe`` themselves.
The photon gauge is the summed power ``Σ_k Σ|P_k|²``. A ``(1, N, N)`` probe gives the same numbers
as its ``(N, N)`` mode, bit for bit, and an ``(N, N)`` probe takes exactly the coherent path.

**Window geometry** (defined once, in :mod:`~ptycho.physics.operators.geometry`): a window of side
``N`` at ``(x, y)`` covers pixel centres ``x − (N−1)/2 … x + (N−1)/2``; off whole pixels it is the
bilinear interpolation of the ``(N+1)×(N+1)`` block of whole pixels starting at
``floor(x − (N−1)/2)``; on whole pixels it is an exact copy. Positions are in pixels of the image
(global object pixels for an object whose pixel ``(0, 0)`` is global pixel 0).

**FFT convention**: the unitary DFT (``norm="ortho"``; Parseval holds, so the counts of a window
sum to its exit-wave energy ``Σ|P·O|²``) and DC-centred far fields, as a detector records them
and as datasets store them (``docs/conventions.md#fourier-convention``). The NumPy backend also
offers the unshifted pair (``farfield`` / ``backfield``, DC at ``[0, 0]``) for iterative callers,
which move measured data into that layout once (``to_fft_layout``).

**Choosing a backend** (each caller picks one on purpose):

* NumPy (:mod:`~ptycho.physics.operators.numpy_ops`): the iterative engines and the streamed global
  estimate (:mod:`ptycho.iterative`): many small calls per iteration, no gradients; and ``stitch``,
  which needs no gradients either, accumulates in double precision in a fixed order (the same file
  twice is the same object bit for bit) and so runs without loading TensorFlow.
* TensorFlow (:mod:`~ptycho.physics.operators.tf_ops`): ``simulate`` and the PINN's physics layers
  and group estimate, which run inside the model's graph and need gradients.

:func:`get_operators` returns a backend by name for code that is written against the interface.

**Position gradients** (position refinement, :mod:`ptycho.iterative.positions`): positions enter
only through the fractional part of the window start
(:func:`~ptycho.physics.operators.geometry.split_start`, ``Windows.fx``/``fy``). The derivative of a
bilinear window with respect to its centre ``x`` is the same interpolation with the ``x`` weight
replaced by the block's column difference (:func:`~ptycho.physics.operators.numpy_ops.extract_with_gradients`);
the TensorFlow backend gets it from autodiff through the same fraction.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Literal

Backend = Literal["numpy", "tensorflow"]

_MODULES = {"numpy": "ptycho.physics.operators.numpy_ops", "tensorflow": "ptycho.physics.operators.tf_ops"}

BACKENDS: tuple[Backend, ...] = ("numpy", "tensorflow")
"""Names :func:`get_operators` accepts."""


def get_operators(backend: Backend) -> ModuleType:
    """The backend module implementing the interface above (imports TensorFlow only for
    ``"tensorflow"``).

    Raises
    ------
    ValueError
        An unknown backend name.
    """
    if backend not in _MODULES:
        raise ValueError(f"unknown operator backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return importlib.import_module(_MODULES[backend])
