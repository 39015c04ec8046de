"""``ptycho evaluate A B --truth T``: several reconstructions scored on one common support."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ptycho.config.evaluate import EvaluateConfig
from ptycho.errors import DataError
from ptycho.io.objects import ObjectImage, read_object
from ptycho.workflows.evaluate import evaluate
from ptycho.workflows.side_by_side import common_support, evaluate_side_by_side, unique_labels
from tests.test_evaluate import CANVAS, ORIGIN, canvas_of, smooth_object, write_recon, write_truth_dataset


@pytest.fixture
def truth():
    return smooth_object()


def noisy(obj, sigma, seed):
    rng = np.random.default_rng(seed)
    return (obj + sigma * (rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape))).astype(np.complex64)


def test_common_support_is_the_intersection_in_global_pixels(truth):
    whole = ObjectImage(truth, np.ones(truth.shape, bool), 0.0, 0.0, {})
    a = ObjectImage(canvas_of(truth), np.ones(CANVAS, bool), float(ORIGIN[0]), float(ORIGIN[1]), {})
    b_support = np.ones((40, 40), bool)
    b_support[:, :5] = False  # global columns 30…34 unsupported in b
    b = ObjectImage(truth[30:70, 30:70], b_support, 30.0, 30.0, {})
    cut_a, cut_b = common_support([a, b], whole)
    # global rows 30…69 ∩ 12…67 = 30…67; columns 35…69 ∩ 20…83 = 35…69
    rows, cols = np.nonzero(cut_a.support)
    assert (rows.min() + ORIGIN[1], rows.max() + ORIGIN[1], cols.min() + ORIGIN[0], cols.max() + ORIGIN[0]) == (30, 67, 35, 69)
    rows, cols = np.nonzero(cut_b.support)
    assert (rows.min() + 30, rows.max() + 30, cols.min() + 30, cols.max() + 30) == (30, 67, 35, 69)
    assert cut_a.support.sum() == cut_b.support.sum() == 38 * 35
    far = ObjectImage(truth[:10, :10], np.ones((10, 10), bool), 0.0, 0.0, {})
    with pytest.raises(DataError, match="share no supported pixel"):
        common_support([b, far], whole)


def test_side_by_side_scores_each_on_the_same_region(tmp_path, truth):
    truth_path = write_truth_dataset(tmp_path / "d.h5", truth)
    exact = write_recon(tmp_path / "exact.npz", canvas_of(truth))
    rough = write_recon(tmp_path / "rough.npz", noisy(truth[30:66, 30:70], 0.3, 1), origin=(30, 30))
    result = evaluate_side_by_side(EvaluateConfig(), [exact, rough], truth_path, tmp_path / "eval")
    assert result.labels == ("exact", "rough")
    regions = [result.metrics[k]["scored_region"] for k in result.labels]
    assert regions[0] == regions[1] == {"x0": 30, "y0": 30, "width": 40, "height": 36}
    assert result.metrics["exact"]["phase"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result.metrics["rough"]["phase"]["ssim"] < 0.9
    # the same as evaluating the rough one alone: its support lies inside the exact one's
    alone = evaluate(EvaluateConfig(), rough, truth_path, tmp_path / "alone").metrics
    assert result.metrics["rough"]["phase"]["ssim"] == pytest.approx(alone["phase"]["ssim"], abs=1e-6)
    record = json.loads(result.metrics_path.read_text())
    assert record["labels"] == ["exact", "rough"] and set(record["reconstructions"]) == {"exact", "rough"}
    assert result.figure_path.stat().st_size > 1000


def test_labels_are_stems_made_unique():
    assert unique_labels(["a/pinn.npz", "b/rpie.h5"]) == ("pinn", "rpie")
    assert unique_labels(["a/object.npz", "b/object.npz"]) == ("object-1", "object-2")


def test_cli_evaluate_several_objects(invoke, tmp_path, truth, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    truth_path = write_truth_dataset(tmp_path / "d.h5", truth)
    pinn = write_recon(tmp_path / "pinn.npz", noisy(canvas_of(truth), 0.05, 2))
    rpie = write_recon(tmp_path / "rpie.npz", noisy(canvas_of(truth), 0.4, 3))
    out = tmp_path / "eval"
    result = invoke("evaluate", pinn, rpie, "--truth", truth_path, "--out", out)
    assert result.exit_code == 0, result.output
    assert "pinn" in result.stdout and "rpie" in result.stdout and "phase SSIM" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "side_by_side.png"]
    record = json.loads((out / "metrics.json").read_text())
    scores = {k: v["phase"]["ssim"] for k, v in record["reconstructions"].items()}
    assert scores["pinn"] > scores["rpie"]
    as_json = invoke("evaluate", pinn, rpie, "--truth", truth_path, "--out", tmp_path / "e2", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert set(json.loads(as_json.stdout)["results"]) == {"pinn", "rpie"}
    missing = invoke("evaluate", pinn, tmp_path / "nope.npz", "--truth", truth_path, "--out", tmp_path / "e3")
    assert missing.exit_code == 3 and "nope.npz" in missing.output
    assert not (tmp_path / "e3" / "metrics.json").exists()


def test_side_by_side_table_marks_the_best_and_reads_an_uncrossed_frc_as_nyquist():
    from rich.console import Console

    from ptycho_cli.tables import side_by_side_table

    metrics = {"a": {"phase": {"ssim": 0.7}, "frc": {"frc50_cycles_per_px": 0.3}},
               "b": {"phase": {"ssim": 0.8}, "frc": {"frc50_cycles_per_px": None}}}
    console = Console(width=200, record=True)
    console.print(side_by_side_table(metrics))
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
             for line in console.export_text().splitlines() if line.count("│") >= 4}
    assert lines["phase SSIM"] == ["0.7", "0.8 *"]
    assert lines["FRC-0.5 (cycles/px)"] == ["0.3", "not crossed *"]
