"""Convergence, determinism and the Python API on the small noise-free dataset."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_iterative import IterativeConfig, ReconstructionResult, reconstruct, reconstruct_arrays

SSIM_MIN = 0.95
"""Phase (and amplitude) SSIM each engine must reach, scored by ``ptycho evaluate``."""
CONVERGE = {
    "rpie": {"iterations": 150},  # defaults otherwise: batch 8, alpha 0.1
    "epie": {"iterations": 250, "batch_size": 2},  # ePIE's smaller steps need smaller batches
}
"""Iterations that reach SSIM_MIN on the 100-position test scene (README, "Convergence")."""


def score(result: ReconstructionResult, dataset, tmp_path) -> dict:
    """``ptycho evaluate`` metrics of ``result`` against the dataset's ground truth."""
    from ptycho.config.evaluate import EvaluateConfig
    from ptycho.io.objects import write_object
    from ptycho.workflows.evaluate import evaluate

    path = write_object(tmp_path / "object.npz", result.object_image())
    return evaluate(EvaluateConfig(), path, dataset, tmp_path / "eval").metrics


@pytest.mark.parametrize("engine", ["rpie", "epie"])
def test_engine_converges_to_the_truth(engine, small, small_dataset, tmp_path):
    result = reconstruct(small, engine=engine, **CONVERGE[engine])
    metrics = score(result, small_dataset, tmp_path)
    phase, amplitude = metrics["phase"]["ssim"], metrics["amplitude"]["ssim"]
    print(f"{engine}: phase SSIM {phase:.4f}, amplitude SSIM {amplitude:.4f}, "
          f"{result.seconds:.2f} s, shift {metrics['shift_px']}")
    assert phase >= SSIM_MIN
    assert amplitude >= SSIM_MIN
    assert np.max(np.abs(metrics["shift_px"])) < 0.1  # no registration offset: conventions agree
    assert metrics["amplitude_mean"]["ratio"] == pytest.approx(1.0, abs=0.01)  # absolute gauge


@pytest.mark.parametrize("engine", ["rpie", "epie"])
def test_error_decreases(engine, small):
    errors = reconstruct(small, engine=engine, iterations=30).errors
    assert errors.shape == (30,) and np.all(np.isfinite(errors))
    assert errors[-1] < 0.01 * errors[0]
    assert np.all(errors[5:] < errors[:-5])  # decreasing, up to the jitter of random minibatches


def test_same_seed_same_output_other_seed_other_order(small):
    a = reconstruct(small, iterations=5, seed=7)
    b = reconstruct(small, iterations=5, seed=7)
    c = reconstruct(small, iterations=5, seed=8)
    np.testing.assert_array_equal(a.object, b.object)
    np.testing.assert_array_equal(a.errors, b.errors)
    assert not np.array_equal(a.object, c.object)


def test_result_geometry_is_the_object_frame(small):
    result = reconstruct(small, iterations=1)
    assert result.object.shape == small.object.shape and result.object.dtype == np.complex64
    assert (result.origin_x, result.origin_y) == (0, 0)
    assert 0.3 < result.support.mean() < 1.0
    image = result.object_image({"k": 1})
    assert np.all(image.object[~image.support] == 0) and image.metadata == {"k": 1}


def test_crop_to_scan_keeps_the_supported_box(small):
    full = reconstruct(small, iterations=2)
    crop = reconstruct(small, iterations=2, crop_to_scan=True)
    rows, cols = np.flatnonzero(full.support.any(1)), np.flatnonzero(full.support.any(0))
    assert (crop.origin_y, crop.origin_x) == (rows[0], cols[0])
    assert crop.object.shape == (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    np.testing.assert_array_equal(crop.object, full.object[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def test_without_object_shape_the_frame_starts_at_zero(small):
    result = reconstruct_arrays(small.read_patterns(), small.x, small.y, small.probe, iterations=1)
    assert (result.origin_x, result.origin_y) == (0, 0)
    half = (small.N - 1) / 2
    assert result.object.shape[1] >= np.ceil(small.x.max() + half) + 1


def test_probe_update_keeps_the_photon_gauge_and_converges(small):
    result = reconstruct(small, iterations=30, probe_update=True)
    assert np.sum(np.abs(result.probe) ** 2) == pytest.approx(np.sum(np.abs(small.probe) ** 2), rel=1e-4)
    assert result.errors[-1] < 0.01 * result.errors[0]


def test_warm_start_and_callback(small):
    seen, snapshots = [], {}

    def keep(state):
        seen.append((state.iteration, state.error))
        snapshots[state.iteration] = state.result()

    first = reconstruct(small, iterations=3, callback=keep)
    assert [i for i, _ in seen] == [1, 2, 3] and seen[-1][1] == first.errors[-1]
    np.testing.assert_array_equal(snapshots[3].object, first.object)
    assert len(snapshots[1].errors) == 1 and not np.array_equal(snapshots[1].object, first.object)
    more = reconstruct(small, iterations=3, initial_object=first.object)
    assert more.errors[0] < first.errors[0]


def test_options_are_validated_and_engine_defaults_resolved():
    from pydantic import ValidationError

    assert IterativeConfig(engine="epie").alpha == 1.0
    assert IterativeConfig().engine == "rpie" and IterativeConfig().iterations == 50
    with pytest.raises(ValidationError):
        IterativeConfig(engine="dm")
    with pytest.raises(ValidationError):
        IterativeConfig(engine="rpie", alpha=1.5)


def test_accepts_a_path(small_dataset):
    assert reconstruct(small_dataset, iterations=1).object.shape == (80, 80)


def test_non_finite_iterations_raise_a_numerical_error(small):
    from ptycho.errors import NumericalError

    counts = small.read_patterns()
    counts[3, 5, 5] = np.nan  # load_dataset refuses this; the array API must still fail cleanly
    with pytest.raises(NumericalError, match="non-finite at iteration 1") as info:
        reconstruct_arrays(counts, small.x, small.y, small.probe, iterations=2)
    assert info.value.exit_code == 4
    assert "`iterative.alpha`" in str(info.value)  # the command prints it as --alpha (guard, FLAGS)
