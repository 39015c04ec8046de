"""The rough edges of issue 13 that are not a bad-input row of the table: scoring a scan with holes
(item 10), plugin reports (11), grid scans that fill the object (12), the amplitude ceiling of
legacy-bright objects (13), defaults in ``--help`` (14), physical values on ``simulate`` (15),
figure colour ranges (17), and debug-ab's outcome against run-to-run noise (18)."""

from __future__ import annotations

import itertools
import json
import types
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from ptycho.config.evaluate import EvaluateConfig
from ptycho.config.physics import ScanConfig
from ptycho.config.train import TrainConfig
from ptycho.data.dataset import Dataset
from ptycho.io.objects import ObjectImage, write_object
from ptycho.physics.scan import grid_scan, resolved_scan
from ptycho.workflows.evaluate import evaluate, supported_rectangle
from ptycho_cli import hookimpl


def cli(*args, **kwargs):
    from ptycho_cli.app import make_app

    return CliRunner().invoke(make_app(env={}, **kwargs), [str(a) for a in args], catch_exceptions=False)


# -- item 10: the largest supported rectangle, exactly -------------------------------------------

def brute_force_rectangle_area(support: np.ndarray, min_side: int) -> int:
    H, W = support.shape
    best = 0
    for r0, r1 in itertools.combinations(range(H + 1), 2):
        for c0, c1 in itertools.combinations(range(W + 1), 2):
            if r1 - r0 >= min_side and c1 - c0 >= min_side and support[r0:r1, c0:c1].all():
                best = max(best, (r1 - r0) * (c1 - c0))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_side", [1, 3])
def test_supported_rectangle_is_the_largest_one(seed, min_side):
    support = np.random.default_rng(seed).random((9, 11)) > 0.25
    region = supported_rectangle(support, min_side=min_side)
    best = brute_force_rectangle_area(support, min_side)
    if best == 0:
        assert region is None
        return
    r0, r1, c0, c1 = region
    assert support[r0:r1, c0:c1].all() and min(r1 - r0, c1 - c0) >= min_side
    assert (r1 - r0) * (c1 - c0) == best


def union_of_crops(seed: int, n: int, size: int, crop: int) -> np.ndarray:
    """The support a random scan leaves: crop squares at random centres, with holes between them."""
    rng = np.random.default_rng(seed)
    support = np.zeros((size, size), bool)
    for cx, cy in rng.uniform(crop / 2, size - crop / 2, (n, 2)):
        r0, c0 = int(round(cy - crop / 2)), int(round(cx - crop / 2))
        support[r0:r0 + crop, c0:c0 + crop] = True
    return support


def test_a_random_scan_with_holes_is_scored_on_a_large_rectangle(tmp_path):
    """The greedy search of the earlier code cut this support down to a 13×75 strip (evaluate then
    refused it); the largest rectangle inside it is 58×30."""
    size = 112
    support = union_of_crops(seed=1, n=80, size=size, crop=16)
    rng = np.random.default_rng(4)
    truth = (0.8 + 0.2 * rng.random((size, size))) * np.exp(1j * rng.random((size, size)))
    truth = truth.astype(np.complex64)
    recon = np.where(support, truth, 0).astype(np.complex64)
    write_object(tmp_path / "o.npz", ObjectImage(recon, support))
    write_object(tmp_path / "t.npz", ObjectImage(truth, np.ones_like(support)))
    result = evaluate(EvaluateConfig(registration=False), tmp_path / "o.npz", tmp_path / "t.npz", tmp_path / "e")
    r0, r1, c0, c1 = result.region
    assert support[r0:r1, c0:c1].all() and (r1 - r0) * (c1 - c0) == 58 * 30
    assert result.metrics["amplitude"]["mae"] == pytest.approx(0.0, abs=1e-6)


# -- item 11: plugins ---------------------------------------------------------------------------

def test_every_registration_hook_has_its_record_type_checked():
    from ptycho_cli import hookspecs
    from ptycho_cli.plugin_checks import EXPECTED_RECORDS

    registration = {name for name in dir(hookspecs) if name.startswith("ptycho_")}
    assert registration == set(EXPECTED_RECORDS)


def test_plugins_verbose_shows_why_a_plugin_failed_to_load():
    from ptycho_cli.app import build_app
    from ptycho_cli.plugins import get_plugin_manager

    class Broken:
        name, dist = "broken", None

        def load(self):
            return importlib_nowhere()  # noqa: F821 - the failure under test

    host = get_plugin_manager(entry_points=[Broken()], env={})
    result = CliRunner().invoke(build_app(host), ["plugins", "--verbose"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "failed to load (NameError" in result.stdout and "Traceback (most recent call last)" in result.stdout
    assert "importlib_nowhere" in result.stdout
    plain = CliRunner().invoke(build_app(get_plugin_manager(entry_points=[Broken()], env={})), ["plugins"])
    assert "Traceback" not in plain.stdout


def test_a_clash_found_during_a_run_is_printed(tmp_path):
    """A component clash is found when a command collects the components, after the app was built."""
    from ptycho_cli.specs import ScanSpec

    clash = types.ModuleType("late-clash")
    clash.ptycho_scans = hookimpl(lambda: [ScanSpec("grid", lambda *a: ([0.0], [0.0]))])
    result = cli("simulate", "--N", "32", "--size", "16", "--out", tmp_path / "x.h5", plugins=[clash])
    assert result.exit_code == 2  # the size error, after the components were collected
    assert "warning: plugin 'late-clash': scan 'grid' ignored, 'builtin.physics' provides it" in result.stderr


# -- item 12: a stepped grid fills the object ----------------------------------------------------

def test_a_grid_step_without_n_images_scans_the_whole_object():
    rng = np.random.default_rng(0)
    x, _ = grid_scan((96, 96), 32, ScanConfig(kind="grid", step_px=8), rng)
    assert x.size == 9 * 9  # centres 15.5 … 79.5 every 8 px, not the first 512 or 16 rows
    with pytest.warns(UserWarning, match="keeps only the first 10 of the 81 grid positions"):
        x, _ = grid_scan((96, 96), 32, ScanConfig(kind="grid", step_px=8, n_images=10), rng)
    assert x.size == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid_scan((96, 96), 32, ScanConfig(kind="grid", n_images=16), rng)  # no step: n_images decides
    replay = resolved_scan(ScanConfig(kind="grid", step_px=8), 81)
    assert replay.n_images == 81 and "n_images" in replay.model_fields_set


# -- item 13: the amplitude ceiling follows the data ---------------------------------------------

def bright_dataset(amplitude: float) -> Dataset:
    N = 32
    probe = np.ones((N, N), np.complex64) * 10
    counts = np.full((4, N, N), amplitude**2 * 100, np.float32)  # Σ counts = amplitude² Σ|P|²
    return Dataset(counts, np.zeros(4), np.zeros(4), probe, metadata={"gridsize": 1})


def test_the_amplitude_ceiling_is_raised_for_bright_data_only():
    from ptycho.workflows.train import resolve_model_config

    assert resolve_model_config(TrainConfig(), bright_dataset(1.0)).amplitude_max == 2.0  # unchanged default
    assert resolve_model_config(TrainConfig(), bright_dataset(4.9)).amplitude_max == pytest.approx(9.8)
    explicit = TrainConfig.model_validate({"model": {"amplitude_max": 2.0}})
    assert resolve_model_config(explicit, bright_dataset(4.9)).amplitude_max == 2.0  # set: respected


def test_a_masked_hot_pixel_does_not_raise_the_ceiling():
    from ptycho.workflows.train import resolve_model_config

    hot = bright_dataset(1.0)
    hot.diffraction[:, 3, 5] = 1e12
    assert resolve_model_config(TrainConfig(), hot).amplitude_max > 100  # unmasked, it would count
    hot.mask = np.ones((32, 32), bool)
    hot.mask[3, 5] = False
    assert resolve_model_config(TrainConfig(), hot).amplitude_max == 2.0


def test_saturated_amplitudes_are_reported(tmp_path):
    from ptycho.workflows.infer import warn_if_saturated

    with pytest.warns(UserWarning, match=r"50.0 % of the reconstructed amplitudes sit at the model's ceiling 2"):
        warn_if_saturated(50, 100, 2.0, tmp_path / "p.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_saturated(0, 100, 2.0, tmp_path / "p.h5")


# -- item 14 and 15: defaults in --help, physical values on simulate -----------------------------

@pytest.mark.parametrize("command, shown", [
    ("train", ["epochs", "batch-size", "learning-rate", "n-filters-scale", "seed"]),
    ("simulate", ["n-images", "N ", "nphotons", "object", "scan"]),
])
def test_help_shows_the_defaults(command, shown, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    text = cli(command, "--help").stdout
    defaults = {"train": {"epochs": "20", "batch-size": "16", "learning-rate": "0.001", "n-filters-scale": "2",
                          "seed": "0"},
                "simulate": {"n-images": "512", "N ": "64", "nphotons": "1e+09", "object": "lines", "scan": "random"}}
    for option in shown:
        line = next(line for line in text.splitlines() if line.lstrip("│ ").startswith(f"--{option}"))
        assert f"[default: ({defaults[command][option]})]" in line, line


def test_simulate_records_energy_distance_and_pixel_size(tmp_path):
    from ptycho.io.datasets import load_dataset

    out = tmp_path / "d.npz"
    result = cli("simulate", "--N", "32", "--size", "64", "--n-images", "4", "--no-preview", "--quiet", "--out", out,
                 "--photon-energy-ev", "8000", "--detector-distance-m", "2", "--pixel-size-m", "1e-8")
    assert result.exit_code == 0, result.output
    with load_dataset(out) as ds:
        assert (ds.metadata["photon_energy_eV"], ds.metadata["detector_distance_m"], ds.metadata["pixel_size_m"]) \
            == (8000.0, 2.0, 1e-8)


# -- item 17: colour ranges ----------------------------------------------------------------------

def test_a_narrow_phase_gets_a_sequential_map_over_its_own_range():
    from ptycho.figures.common import phase_display, robust_limits

    phase = np.linspace(0, 1, 1000)
    shown = phase_display(phase)
    assert shown["cmap"] != "twilight" and shown["vmin"] == pytest.approx(0, abs=0.01)
    assert shown["vmax"] == pytest.approx(1, abs=0.01)  # 0 and 1 rad at the two ends of the map
    assert phase_display(np.linspace(-np.pi, np.pi, 1000))["cmap"] == "twilight"
    spiky = np.concatenate([np.linspace(0.6, 1.0, 1000), [40.0, -30.0]])  # two edge outliers
    lo, hi = robust_limits(spiky)
    assert 0.59 < lo < 0.62 and 0.98 < hi < 1.01


def test_preview_and_stitched_figures_use_those_ranges(tmp_path, monkeypatch):
    import ptycho.figures.common as common
    from ptycho.figures.preview import simulation_preview
    from ptycho.workflows.stitch import object_figures

    seen = {}
    real = common.show_image

    def record(fig, ax, image, title, **kwargs):
        seen[title.split(",")[0]] = kwargs
        real(fig, ax, image, title, **kwargs)

    monkeypatch.setattr(common, "show_image", record)
    monkeypatch.setattr("ptycho.figures.preview.show_image", record)
    obj = (0.8 * np.exp(1j * np.linspace(0, 1, 64 * 64))).reshape(64, 64).astype(np.complex64)
    simulation_preview(tmp_path / "p.png", obj=obj, probe=np.ones((8, 8), np.complex64), x=np.zeros(1), y=np.zeros(1),
                       patterns=np.zeros((0, 8, 8)))
    assert seen["object phase (rad)"]["cmap"] == "viridis" and seen["object phase (rad)"]["vmax"] < 1.01
    obj[0, 0] = 50.0  # an edge outlier
    object_figures(tmp_path / "o.npz", obj, np.ones(obj.shape, bool), (0, 0))
    assert seen["amplitude"]["vmax"] < 1.0


# -- item 18: debug-ab for arms that differ by design ------------------------------------------

def test_outcome_is_judged_against_the_spread_within_the_arms():
    from ptycho.debug.outcome import design_stage, judge_outcome

    same = judge_outcome([{"phase_ssim": 0.80}, {"phase_ssim": 0.84}], [{"phase_ssim": 0.82}, {"phase_ssim": 0.85}])
    assert not same["differs"] and same["scores"]["phase_ssim"]["noise"] == pytest.approx(0.04)
    apart = judge_outcome([{"phase_ssim": 0.80}, {"phase_ssim": 0.81}], [{"phase_ssim": 0.60}, {"phase_ssim": 0.62}])
    assert apart["differs"] and apart["scores"]["phase_ssim"]["difference"] == pytest.approx(0.195)
    tiny = judge_outcome([{"phase_ssim": 0.800}] * 2, [{"phase_ssim": 0.805}] * 2)  # no spread: MIN_DIFFERENCE
    assert not tiny["differs"]
    stages = ("simulate", "group", "train", "infer", "stitch", "evaluate")
    assert design_stage([{"key": "train.loss"}], stages) == ("train", ["train.loss"])
    assert design_stage([{"key": "train.loss"}, {"key": "simulate.nphotons"}], stages)[0] == "simulate"
    assert design_stage([], stages) is None


def test_grid_vs_nongrid_judges_the_outcome_against_reruns(tmp_path):
    """Tiny full run (48 positions, 1 epoch, XLA off): every arm also runs with other seeds, and
    the verdict says whether the scores differ beyond that spread, not "first divergence" alone."""
    out = tmp_path / "ab"
    result = cli("debug-ab", "grid", "nongrid", "--out", out, "--json", "--no-figure", "--n-images", "48",
                 "--epochs", "1", "--set", "debug_ab.object_size=64", "--set", "train.jit=false",
                 "--set", "infer.jit=false")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["first_divergent_stage"] == "simulate"  # the taps still say where the numbers differ
    assert report["designed_difference"] == {"stage": "simulate", "keys": ["simulate.scan.kind"]}
    outcome = report["outcome"]
    assert outcome["runs_per_arm"] == 2 and outcome["replicates"] == {"A": ["A-seed2"], "B": ["B-seed2"]}
    for score in outcome["scores"].values():
        assert len(score["a"]) == len(score["b"]) == 2
        assert score["differs"] == (score["difference"] > score["threshold"])
    assert "(expected: the arms differ by design in simulate.scan.kind" in report["verdict"]
    assert "run-to-run" in report["verdict"]
    pipeline = json.loads(json.dumps(__import__("yaml").safe_load((out / "A-seed2" / "pipeline.yaml").read_text())))
    assert pipeline["train"]["seed"] != 0 and pipeline["simulate"]["seed"] == 0  # other seeds, same object
    assert "## Outcome vs run-to-run noise" in (out / "report.md").read_text()
