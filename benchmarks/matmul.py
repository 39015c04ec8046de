"""The machine's measured compute limit: float32 matrix-multiply rates of TensorFlow (the PINN's
side) and NumPy (the iterative side), the reference the benchmark's achieved FLOP/s are compared
with (benchmarks/README.md#cost-accounting).

A ``n×n`` by ``n×n`` product costs ``2·n³`` FLOPs. Each rate is the best of ``repeats`` timed
products after one warm-up, at ``n`` and at ``n/2``: when the two agree the size is compute-bound
(the rate has stopped growing with ``n``); the faster of the two is the limit
(:func:`limit_gflops`). Thread counts are reported as the libraries resolved them.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def _best_rate(product: Any, n: int, repeats: int) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of ``product()`` (one ``n³`` GEMM each)."""
    product()  # warm-up: thread pools, kernels, caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def tensorflow_rates(n: int, repeats: int) -> dict[str, Any]:
    """``tf.matmul`` float32 at sizes ``n`` and ``n/2`` (in a ``tf.function``, the result fetched)."""
    from ptycho._tf import tf as _tf

    tf = _tf()
    rates = {}
    for size in (n // 2, n):
        a = tf.random.stateless_normal([size, size], seed=[1, 2])
        b = tf.random.stateless_normal([size, size], seed=[3, 4])
        product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))  # a scalar fetch forces the product
        rates[size] = _best_rate(lambda: product().numpy(), size, repeats)
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    return {"gflops": rates[n], "gflops_half_size": rates[n // 2], "n": n, "repeats": repeats,
            "intra_op_threads": intra, "inter_op_threads": inter,
            "threads": f"intra-op {intra or 'auto'}, inter-op {inter or 'auto'} ({available_cpus()} CPUs available)"}


def numpy_rates(n: int, repeats: int) -> dict[str, Any]:
    """``numpy.matmul`` float32 at sizes ``n`` and ``n/2``."""
    rng = np.random.default_rng(0)
    rates = {}
    for size in (n // 2, n):
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        out = np.empty((size, size), np.float32)
        rates[size] = _best_rate(lambda: np.matmul(a, b, out=out), size, repeats)
    threads = blas_threads()
    return {"gflops": rates[n], "gflops_half_size": rates[n // 2], "n": n, "repeats": repeats,
            "blas": blas_name(), "blas_threads": threads,
            "threads": f"BLAS {threads if threads else 'threads unknown'} ({available_cpus()} CPUs available)"}


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_name() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - only a description
        return "unknown"


def blas_threads() -> int | None:
    """Threads of NumPy's bundled OpenBLAS (its ``get_num_threads``), or None when it cannot be asked."""
    import ctypes

    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(glob.glob(str(libs / "*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                return int(fn())
    return None


def matmul_rates(n: int, repeats: int) -> dict[str, Any]:
    """Both libraries' rates (TensorFlow imported here)."""
    return {"tensorflow": tensorflow_rates(n, repeats), "numpy": numpy_rates(n, repeats)}


def limit_gflops(rate: dict[str, Any] | None) -> float | None:
    """The measured limit of a rate record: the faster of its two sizes (a product disturbed by
    other work on the machine only ever reads slower), or None when not measured."""
    if not rate or not rate.get("gflops"):
        return None
    return max(rate["gflops"], rate.get("gflops_half_size") or 0.0)


def fraction(achieved_flops_per_s: float | None, rate: dict[str, Any] | None) -> float | None:
    """``achieved / measured matmul limit`` (:func:`limit_gflops`; None when either is unknown)."""
    limit = limit_gflops(rate)
    if not achieved_flops_per_s or limit is None:
        return None
    return achieved_flops_per_s / (limit * 1e9)
