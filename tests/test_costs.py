"""The benchmark's cost accounting (benchmarks/README.md#cost-accounting): FLOP counts of layers,
of the PINN and of the iterative engines, the measured matmul rate, and the efficiency rows."""

from __future__ import annotations

import math
import sys
import warnings
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.costs import efficiency_rows, stages_note  # noqa: E402
from benchmarks.flops import Flops, layer_flops, network_flops  # noqa: E402
from benchmarks.flops_iterative import block_areas, pie_iteration_flops, pie_pattern_flops, prepass_flops  # noqa: E402
from benchmarks.matmul import fraction, numpy_rates, tensorflow_rates  # noqa: E402
from benchmarks.report import INFO, NA  # noqa: E402


def _keras():
    from ptycho._tf import tf

    tf()
    import keras

    return keras


def test_conv_and_dense_layers_cost_the_analytic_formula():
    keras = _keras()
    inputs = keras.Input((16, 12, 3))
    conv = keras.layers.Conv2D(8, (3, 5), padding="same", activation="relu")
    dense = keras.layers.Dense(4, use_bias=False)  # linear, no bias: products only
    pool = keras.layers.MaxPooling2D(2)
    pool(dense(conv(inputs)))
    assert layer_flops(conv) == Flops(conv=2 * 16 * 12 * 3 * 8 * 3 * 5, elementwise=16 * 12 * 8 * 2)
    assert layer_flops(dense) == Flops(conv=2 * 16 * 12 * 8 * 4)
    assert layer_flops(pool) == Flops(elementwise=8 * 6 * 4 * 3)  # 3 compares per 2×2 window


def test_a_layer_without_a_rule_is_refused_not_counted_free():
    keras = _keras()
    inputs = keras.Input((8, 8, 2))
    norm = keras.layers.BatchNormalization()
    norm(inputs)
    with pytest.raises(ValueError, match="no FLOP rule.*BatchNormalization"):
        layer_flops(norm)


@pytest.mark.parametrize("gridsize, estimate", [(1, "global"), (2, "group")])
def test_network_convolutions_match_tensorflows_own_count(gridsize, estimate):
    """The built-in network's convolution FLOPs equal the statistics TensorFlow registers for its
    Conv2D ops (``2·output·k_h·k_w·C_in``), traced on one sample; per pattern is per group / C."""
    from tensorflow.python.framework import ops as tf_ops

    from ptycho._tf import tf as _tf
    from ptycho.config.train import ModelConfig
    from ptycho.models.network import build_cnn

    tf = _tf()
    network = build_cnn(ModelConfig(N=32, gridsize=gridsize, estimate=estimate))
    spec = tf.TensorSpec([1, *network.input.shape[1:]], tf.float32)
    graph = tf.function(lambda t: network(t)).get_concrete_function(spec).graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the statistics helper is TF1-era and says so
        tf_conv = sum(tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
                      for op in graph.get_operations() if op.type == "Conv2D")
    C = gridsize**2
    per_pattern = network_flops(network, C)
    assert tf_conv > 0 and per_pattern.conv * C == pytest.approx(tf_conv, rel=1e-12)
    assert 0 < per_pattern.elementwise < per_pattern.conv


def _random_scan(M: int, N: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.uniform(N, 3 * N, M), rng.uniform(N, 3 * N, M)


@pytest.fixture
def minibatch_areas(monkeypatch):
    """The sub-canvas area of every minibatch the PIE engine forms its step on, as it runs."""
    import ptycho.iterative.pie as pie

    seen, real = [], pie.block_extent

    def recording(windows):
        r0, r1, c0, c1 = real(windows)
        seen.append((r1 - r0) * (c1 - c0))
        return r0, r1, c0, c1

    monkeypatch.setattr(pie, "block_extent", recording)
    return seen


def test_pie_count_replays_the_engines_minibatches(minibatch_areas):
    """The per-minibatch sub-canvas areas the count assumes are the ones rPIE's first iteration
    really forms its step on (same seeded order, same batches)."""
    from ptycho.iterative.engines import reconstruct_arrays

    N, M = 16, 37
    x, y = _random_scan(M, N)
    probe = np.ones((N, N), np.complex64)
    counts = np.random.default_rng(0).poisson(5.0, (M, N, N)).astype(np.float32)
    reconstruct_arrays(counts, x, y, probe, engine="rpie", iterations=1, batch_size=8, seed=4)
    assert np.array_equal(block_areas(x, y, N, batch=8, seed=4), np.asarray(minibatch_areas, float))
    one = pie_iteration_flops(x, y, N, "rpie", batch=8, seed=4)
    assert one.fft == pytest.approx(M * pie_pattern_flops(N).fft)  # an FFT pair per pattern
    assert one.fft == pytest.approx(M * 2 * 5 * N * N * math.log2(N * N))
    assert one.elementwise > M * pie_pattern_flops(N).elementwise  # plus the per-minibatch work


def test_prepass_count_replays_the_leave_fold_out_estimate(minibatch_areas):
    """The global-estimate pre-pass: one rPIE estimate per fold over the other folds' positions,
    streamed by chunks; the count's minibatch areas are the ones the estimate really forms."""
    from ptycho.config.train import ModelConfig
    from ptycho.iterative.streaming import estimate_folds, global_estimate

    N, M, folds, passes, batch, chunk = 16, 45, 3, 2, 8, 20
    x, y = _random_scan(M, N, seed=5)
    counts = np.random.default_rng(1).poisson(5.0, (M, N, N)).astype(np.float32)
    dataset = SimpleNamespace(x=x, y=y, N=N, n_patterns=M, probe=np.ones((N, N), np.complex64), mask=None,
                              read_patterns=lambda rows: counts[rows])
    global_estimate(dataset, 1, folds=folds, batch_size=batch, chunk=chunk, seed=7)  # one pass replayed exactly
    labels = estimate_folds(M, folds, 7)
    expected = np.concatenate([block_areas(x, y, N, batch, seed=7, chunk=chunk, use=labels != k) for k in range(folds)])
    assert np.array_equal(expected, np.asarray(minibatch_areas, float))
    config = ModelConfig(N=32, gridsize=1, estimate="global", estimate_folds=folds, global_passes=passes,  # N: the scan's below
                         estimate_batch_size=batch, seed=7)
    total = prepass_flops(config, x, y, N)
    # each pattern in folds − 1 estimates (two FFTs a visit), and from the last of global_passes on
    # checked once a pass in its own fold's estimate (one FFT: the held-out continuation)
    one_fft = pie_pattern_flops(N).fft / 2
    assert total.fft == pytest.approx((passes * (folds - 1) * M * 2 + M) * one_fft)
    unchecked = prepass_flops(config.model_copy(update={"estimate_patience": 0}), x, y, N)
    assert unchecked.fft == pytest.approx(passes * (folds - 1) * M * pie_pattern_flops(N).fft)
    ran = (2, 5, 9)  # the passes each fold ran, as infer records them
    counted = prepass_flops(config, x, y, N, ran).fft
    sizes = np.bincount(labels, minlength=folds)
    assert counted == pytest.approx(sum(p * (M - n) * 2 + (p - passes + 1) * n for p, n in zip(ran, sizes)) * one_fft)
    assert prepass_flops(ModelConfig(N=32, gridsize=1, estimate="none"), x, y, N).total == 0


def test_prepass_count_of_the_held_out_continuation_follows_the_calls_it_makes(monkeypatch):
    """The passes the continuation runs (``passes_run``, not the ones it keeps) are what the count
    multiplies: far fields counted = far fields the estimate forms (two per pattern visit in an
    update, one per held-out pattern in each check from the last of ``global_passes`` on)."""
    from ptycho.config.train import ModelConfig
    from ptycho.iterative import pie, streaming

    N, M, passes, patience = 16, 60, 1, 3
    x, y = _random_scan(M, N, seed=5)
    counts = np.random.default_rng(1).poisson(3.0, (M, N, N)).astype(np.float32)
    dataset = SimpleNamespace(x=x, y=y, N=N, n_patterns=M, probe=np.ones((N, N), np.complex64), mask=None,
                              read_patterns=lambda rows: counts[rows])
    ffts = []
    for module in (pie, streaming):
        real = module.farfield
        monkeypatch.setattr(module, "farfield", lambda waves, real=real: (ffts.append(waves.shape[0]), real(waves))[1])
    real_back = pie.backfield
    monkeypatch.setattr(pie, "backfield", lambda spectra: (ffts.append(spectra.shape[0]), real_back(spectra))[1])
    estimate = streaming.global_estimate(dataset, passes, folds=2, batch_size=8, patience=patience, max_passes=40,
                                         seed=7)
    assert estimate.passes_run != estimate.passes  # it ran past the passes it kept
    config = ModelConfig(N=32, gridsize=1, estimate="global", estimate_folds=2, global_passes=passes,
                         estimate_batch_size=8, estimate_patience=patience, estimate_max_passes=40, seed=7)
    counted = prepass_flops(config, x, y, N, estimate.passes_run).fft
    assert counted == pytest.approx(sum(ffts) * pie_pattern_flops(N).fft / 2)


def test_prepass_count_of_an_ml_estimate_visits_each_pattern_in_every_other_folds_estimate():
    """``estimate_engine`` ml: ``estimate_ml_iterations`` nominal ML iterations per fold's estimate,
    over the other folds' positions, plus the canvas work of each; rPIE's passes do not count."""
    from benchmarks.flops_iterative import ml_pattern_flops
    from ptycho.config.train import ModelConfig

    N, M, folds, iterations = 16, 45, 3, 7
    x, y = _random_scan(M, N, seed=5)
    config = ModelConfig(N=32, gridsize=1, estimate="global", estimate_folds=folds, estimate_engine="ml",
                         estimate_ml_iterations=iterations, global_passes=30, seed=7)
    total = prepass_flops(config, x, y, N)
    assert total.fft == pytest.approx(iterations * (folds - 1) * M * ml_pattern_flops(N).fft)
    assert total.elementwise > iterations * (folds - 1) * M * ml_pattern_flops(N).elementwise  # + the canvas
    twice = prepass_flops(config.model_copy(update={"estimate_ml_iterations": 2 * iterations}), x, y, N)
    assert twice.total == pytest.approx(2 * total.total)


def test_matmul_rates_are_positive_and_finite_at_a_tiny_size():
    for rates in (numpy_rates(64, 2), tensorflow_rates(64, 2)):
        assert math.isfinite(rates["gflops"]) and rates["gflops"] > 0
        assert math.isfinite(rates["gflops_half_size"]) and rates["gflops_half_size"] > 0
        assert rates["n"] == 64 and rates["threads"]
    assert fraction(3e9, {"gflops": 12.0}) == pytest.approx(0.25)
    assert fraction(3e9, {"gflops": 6.0, "gflops_half_size": 12.0}) == pytest.approx(0.25)  # the faster size is the limit
    assert fraction(None, {"gflops": 12.0}) is None and fraction(3e9, None) is None


def test_efficiency_rows_report_flops_rate_and_share_of_the_matmul_rate():
    per_pattern = {"conv": 6e6, "fft": 0.0, "elementwise": 2e6, "total": 8e6}
    count, rate, share = efficiency_rows("network", "gs1", per_pattern, 500.0, {"gflops": 16.0, "threads": "intra-op 2"})
    assert (count.measured, count.unit) == (8.0, "MFLOP") and "conv 75.0%" in count.note
    assert (rate.measured, rate.unit) == (pytest.approx(4.0), "GFLOP/s")  # 8 MFLOP × 500/s
    assert share.measured == pytest.approx(25.0) and share.status == INFO and "16.0 GFLOP/s" in share.note
    *_, unmeasured = efficiency_rows("network", "gs1", per_pattern, 500.0, None)
    assert unmeasured.measured is None and unmeasured.status == NA and "not measured" in unmeasured.note


def test_stages_note_names_every_stage_in_order():
    text = stages_note({"load": 0.5, "prepare": 0.25, "estimate": 2.0, "network": 3.0, "io": 1.0}, stitch_s=4.0)
    assert text == ("bundle load 0.50 s + grouping 0.25 s + pre-pass (global estimate) 2.00 s + "
                    "network (first batch compiles) 3.00 s + reading/writing 1.00 s + stitch 4.00 s")
