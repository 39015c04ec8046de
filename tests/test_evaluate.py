"""``evaluate`` (docs/reconstruction.md#evaluation): cropping by origin, scored region, metrics, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from ptycho.config.evaluate import EvaluateConfig
from ptycho.data.dataset import Dataset
from ptycho.errors import DataError
from ptycho.io.datasets import save_dataset
from ptycho.io.objects import ObjectImage, write_object
from ptycho.io.atomic import json_safe
from ptycho.workflows.evaluate import evaluate, supported_rectangle

N = 16
SIZE = 96
ORIGIN = (20, 12)  # (x, y) of the reconstruction's canvas in the truth
CANVAS = (56, 64)  # (H, W)
LEGACY_LABEL = "phase SSIM (legacy (φ+π)/2π, range 1)"


def smooth_object(seed=0):
    rng = np.random.default_rng(seed)
    amp = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.5, mode="wrap")
    phase = ndimage.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.5, mode="wrap")
    return ((0.8 + 0.8 * amp) * np.exp(2j * phase)).astype(np.complex64)


def canvas_of(image, origin=ORIGIN, shape=CANVAS):
    return image[origin[1]:origin[1] + shape[0], origin[0]:origin[0] + shape[1]]


def write_recon(path, obj, *, support=None, origin=ORIGIN):
    support = np.ones(obj.shape, bool) if support is None else support
    return write_object(path, ObjectImage(obj, support, float(origin[0]), float(origin[1]), {}))


def write_truth_dataset(path, truth=None):
    x = y = np.array([40.0, 50.0])
    ds = Dataset(np.zeros((2, N, N), np.float32), x, y, np.ones((N, N), np.complex64), truth)
    return save_dataset(path, ds)


@pytest.fixture
def truth():
    return smooth_object()


def no_nan_json(path: Path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_truth_against_itself_is_perfect(tmp_path, truth):
    recon = write_recon(tmp_path / "o.npz", canvas_of(truth))
    result = evaluate(EvaluateConfig(), recon, write_truth_dataset(tmp_path / "d.h5", truth), tmp_path / "eval")
    m = no_nan_json(result.metrics_path)
    for part in ("amplitude", "phase"):
        assert m[part]["ssim"] == pytest.approx(1.0, abs=1e-9)
        assert m[part]["mae"] == pytest.approx(0.0, abs=1e-6)
        assert m[part]["psnr"] is None or m[part]["psnr"] > 100  # inf → null
    assert m["shift_px"] == [0.0, 0.0]
    assert m["scored_region"] == {"x0": ORIGIN[0], "y0": ORIGIN[1], "width": CANVAS[1], "height": CANVAS[0]}


def test_phase_offset_and_subpixel_shift_are_removed(tmp_path, truth):
    shift = (0.3, -0.45)
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(truth), shift)) * np.exp(0.9j)
    recon = write_recon(tmp_path / "o.h5", canvas_of(moved).astype(np.complex64))
    result = evaluate(EvaluateConfig(), recon, write_truth_dataset(tmp_path / "d.npz", truth), tmp_path / "eval")
    m = result.metrics
    assert m["amplitude"]["ssim"] > 0.98 and m["phase"]["ssim"] > 0.98
    np.testing.assert_allclose(m["shift_px"], [-s for s in shift], atol=0.02)
    unregistered = evaluate(EvaluateConfig(registration=False), recon, tmp_path / "d.npz", tmp_path / "raw").metrics
    assert unregistered["amplitude"]["mae"] > 2 * m["amplitude"]["mae"]


def test_metrics_match_skimage_on_the_aligned_arrays(tmp_path, truth):
    rng = np.random.default_rng(1)
    noisy = canvas_of(truth) * (1 + 0.05 * rng.standard_normal(CANVAS)) * np.exp(0.05j * rng.standard_normal(CANVAS))
    recon = write_recon(tmp_path / "o.npz", noisy.astype(np.complex64))
    result = evaluate(EvaluateConfig(), recon, write_truth_dataset(tmp_path / "d.h5", truth), tmp_path / "eval")
    t, r = result.comparison.truth_aligned, result.comparison.recon_aligned
    pairs = {"amplitude": (np.abs(t), np.abs(r)), "phase": (np.angle(t), np.angle(t) + np.angle(r * np.conj(t)))}
    for part, (ref, img) in pairs.items():
        rng_ = ref.max() - ref.min()
        got = result.metrics[part]
        assert got["ssim"] == pytest.approx(structural_similarity(ref, img, data_range=rng_), rel=1e-9)
        assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=rng_), rel=1e-9)
        assert got["mse"] == pytest.approx(mean_squared_error(ref, img), rel=1e-9)
        assert got["mae"] == pytest.approx(np.mean(np.abs(ref - img)), rel=1e-9)
    assert 0.3 < result.metrics["amplitude"]["ssim"] < 0.99  # noisy: a real, non-trivial score


def test_scored_region_is_inside_the_support(tmp_path, truth):
    support = np.zeros(CANVAS, bool)
    support[4:50, 6:60] = True
    support[4:12, 6:14] = False  # a missing corner
    support[30, 59] = False  # a notch on the right edge
    obj = np.where(support, canvas_of(truth), 0).astype(np.complex64)
    result = evaluate(EvaluateConfig(), write_recon(tmp_path / "o.npz", obj, support=support),
                      write_recon(tmp_path / "t.npz", truth, origin=(0, 0)), tmp_path / "eval")
    r0, r1, c0, c1 = result.region
    assert support[r0:r1, c0:c1].all() and (r1 - r0) * (c1 - c0) >= 0.6 * support.sum()
    assert result.metrics["amplitude"]["mae"] == pytest.approx(0.0, abs=1e-6)
    assert supported_rectangle(np.zeros((5, 5), bool)) is None


def test_partial_overlap_and_truth_support_limit_the_region(tmp_path, truth):
    """A reconstruction hanging over the truth's edge is cut to the overlap; a truth object file's
    own support (e.g. another stitched object) also bounds the scored region."""
    origin = (SIZE - 40, 10)  # the canvas runs 24 px past the truth's right edge
    recon_obj = np.zeros(CANVAS, np.complex64)
    recon_obj[:, :40] = truth[10:10 + CANVAS[0], SIZE - 40:]
    truth_support = np.ones(truth.shape, bool)
    truth_support[:20] = False  # global rows 0…19 unsupported
    result = evaluate(EvaluateConfig(registration=False), write_recon(tmp_path / "o.npz", recon_obj, origin=origin),
                      write_object(tmp_path / "t.h5", ObjectImage(truth, truth_support)), tmp_path / "eval")
    region = result.metrics["scored_region"]
    assert region == {"x0": SIZE - 40, "y0": 20, "width": 40, "height": CANVAS[0] - 10}
    assert result.metrics["amplitude"]["mae"] == pytest.approx(0.0, abs=1e-6)
    assert result.metrics["origin_offset_px"] == [10.0, SIZE - 40.0]


def test_json_safe_replaces_non_finite_numbers():
    assert json_safe({"a": [np.float32(1.5), float("nan")], "b": (float("inf"), np.int64(2))}) == {
        "a": [1.5, None], "b": [None, 2]}


@pytest.mark.parametrize("truth_kind", ["dataset", "object"])
def test_cli_evaluate_accepts_dataset_or_object_truth(invoke, tmp_path, truth, truth_kind, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    recon = write_recon(tmp_path / "o.npz", canvas_of(truth))
    if truth_kind == "dataset":
        truth_path = write_truth_dataset(tmp_path / "d.h5", truth)
    else:
        truth_path = write_recon(tmp_path / "t.h5", truth, origin=(0, 0))
    out = tmp_path / "eval"
    result = invoke("evaluate", recon, "--truth", truth_path, "--out", out, "--phase-ramp")
    assert result.exit_code == 0, result.output
    for text in ("MS-SSIM", "FRC-0.5", "FRC-1/7", "amplitude mean ratio", LEGACY_LABEL, str(out / "metrics.json")):
        assert text in result.stdout, text
    assert sorted(p.name for p in out.iterdir()) == ["comparison.png", "config.yaml", "frc.png", "metrics.json"]
    assert yaml.safe_load((out / "config.yaml").read_text())["evaluate"]["phase_ramp"] is True
    m = no_nan_json(out / "metrics.json")
    assert m["files"]["truth"] == str(truth_path) and m["amplitude"]["ssim"] == pytest.approx(1.0)


def test_cli_evaluate_json_and_no_register(invoke, tmp_path, truth):
    recon = write_recon(tmp_path / "o.npz", canvas_of(truth))
    truth_path = write_truth_dataset(tmp_path / "d.npz", truth)
    result = invoke("evaluate", recon, "--truth", truth_path, "--out", tmp_path / "e", "--no-register", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["results"]["config"]["registration"] is False
    assert summary["metrics"] == str(tmp_path / "e" / "metrics.json")


@pytest.mark.parametrize("case", ["no_overlap", "empty_support", "small_support", "no_truth", "not_2d"])
def test_cli_evaluate_refuses_bad_inputs(invoke, tmp_path, truth, case):
    recon_obj, support, origin = canvas_of(truth), np.ones(CANVAS, bool), ORIGIN
    truth_path = write_truth_dataset(tmp_path / "d.h5", None if case == "no_truth" else truth)
    if case == "no_overlap":
        origin = (SIZE + 5, 0)
    elif case == "empty_support":
        support[:] = False
    elif case == "small_support":
        support[:] = False
        support[10:22, 10:40] = True  # 12 rows: too few
    recon = write_recon(tmp_path / "o.npz", recon_obj, support=support, origin=origin)
    if case == "not_2d":
        np.savez(recon, object=np.ones(8, np.complex64))
    out = tmp_path / "eval"
    result = invoke("evaluate", recon, "--truth", truth_path, "--out", out)
    assert result.exit_code == 3, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output
    expected = {"no_overlap": "do not overlap", "empty_support": "support is empty", "small_support": "12×",
                "no_truth": "no ground-truth object", "not_2d": "expected a non-empty (H, W)"}[case]
    assert expected in errors[0]
    assert not out.exists() or not any(out.iterdir())


def test_failed_figure_leaves_no_partial_outputs(tmp_path, truth, monkeypatch):
    import ptycho.figures.common as common
    from ptycho.io.atomic import atomic_output

    def failing_save(fig, path, *, dpi=110):
        with atomic_output(path) as tmp:
            tmp.write_bytes(b"partial png")
            raise OSError("disk full")

    monkeypatch.setattr(common, "save_figure", failing_save)
    recon = write_recon(tmp_path / "o.npz", canvas_of(truth))
    out = tmp_path / "eval"
    with pytest.raises(OSError, match="disk full"):
        evaluate(EvaluateConfig(), recon, write_truth_dataset(tmp_path / "d.h5", truth), out)
    assert list(out.iterdir()) == []  # no metrics.json, no figure, no temp file


def test_evaluate_direct_errors(tmp_path, truth):
    recon = write_recon(tmp_path / "o.npz", canvas_of(truth))
    with pytest.raises(DataError, match="file not found"):
        evaluate(EvaluateConfig(), recon, tmp_path / "missing.h5", tmp_path / "eval")
