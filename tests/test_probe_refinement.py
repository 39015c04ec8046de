"""Probe refinement: the probe's own variables and optimiser (photon gauge held, relative steps),
its initialisation by iterative passes, ``probe_file`` overrides, and ``infer`` making its input
with the bundle's refined probe instead of the dataset's stale one."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.config.simulate import SimulateConfig
from ptycho.config.train import TrainConfig
from ptycho.io.datasets import load_dataset, save_dataset
from ptycho.models.bundle import load_bundle
from ptycho.models.probe import ProbeVariables, disk_support
from ptycho.physics.probe import probe_energy
from ptycho.workflows.probe_setup import PROBE_GUESS_KEY, probe_from_file
from ptycho.workflows.simulate import simulate
from ptycho.workflows.train import resolve_model_config, train

N = 32
GAUGE_RTOL = 1e-5
TINY = {"batch_size": 8, "model": {"n_filters_scale": 1}, "validation_split": 0.0}


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """``|⟨a, b⟩| / (‖a‖·‖b‖)``: 1 for probes equal up to a constant phase and scale."""
    a, b = np.asarray(a, np.complex128).ravel(), np.asarray(b, np.complex128).ravel()
    return float(abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A noise-free N=32 scan with a defocused probe, and a wrong guess of that probe (no defocus)
    written as a probe file."""
    folder = tmp_path_factory.mktemp("probe-refinement")
    path = folder / "data.npz"
    config = SimulateConfig(N=N, nphotons=float("inf"), object={"kind": "lines", "size": 96},
                            probe={"kind": "ideal", "defocus_rad": 12.0}, scan={"n_images": 128})
    simulate(config, path, preview=False)
    wrong = SimulateConfig(N=N, nphotons=float("inf"), probe={"kind": "ideal", "defocus_rad": 9.0},
                           object={"size": 64}, scan={"n_images": 1})
    simulate(wrong, folder / "guess.npz", preview=False)
    return path, folder / "guess.npz"


def test_probe_variables_hold_the_photon_gauge_whatever_the_variables():
    rng = np.random.default_rng(0)
    probe = (rng.normal(size=(2, N, N)) + 1j * rng.normal(size=(2, N, N))).astype(np.complex64) * 30
    variables = ProbeVariables(probe, trainable=True, support_radius_frac=0.3)
    variables.real.assign(rng.normal(size=(2, N, N)).astype(np.float32))
    variables.imag.assign(rng.normal(size=(2, N, N)).astype(np.float32))
    value = variables.numpy()
    assert value.shape == (2, N, N)
    assert probe_energy(value) == pytest.approx(probe_energy(probe), rel=GAUGE_RTOL)
    outside = disk_support(N, 0.3) == 0
    assert np.all(value[:, outside] == 0) and outside.any()


def test_a_fixed_probe_is_used_exactly_as_given():
    probe = (np.arange(N * N).reshape(N, N) * (1 + 0.5j)).astype(np.complex64)
    np.testing.assert_array_equal(ProbeVariables(probe, trainable=False).numpy(), probe)


def test_refinement_defaults_to_the_datasets_probe_guess_flag(scan):
    with load_dataset(scan[0]) as ds:
        assert not resolve_model_config(TrainConfig(), ds).probe_trainable
        ds.metadata[PROBE_GUESS_KEY] = True
        assert resolve_model_config(TrainConfig(), ds).probe_trainable
        assert not resolve_model_config(TrainConfig(refine_probe=False), ds).probe_trainable


def test_a_probe_file_is_scaled_to_the_datasets_photon_gauge(scan, tmp_path):
    data, guess = scan
    with load_dataset(data) as ds:
        probe = probe_from_file(guess, ds)
        assert probe_energy(probe) == pytest.approx(probe_energy(ds.probe), rel=GAUGE_RTOL)
        with load_dataset(guess) as g:
            assert overlap(probe, g.probe) == pytest.approx(1.0, abs=1e-6)


def test_joint_refinement_moves_a_wrong_probe_towards_the_truth_at_the_gauge(scan, tmp_path):
    """No iterative initialisation: only the probe's own optimiser moves it (the network's
    learning rate would not: at 1e-3 in √counts a probe of peak ≈ 3e4 stays put). Gridsize 2: with
    one pattern per group the object patch can absorb any probe error, the overlap in the group
    is what makes the probe identifiable."""
    data, guess = scan
    config = TrainConfig(epochs=6, refine_probe=True, probe_init_passes=0, probe_file=str(guess),
                         probe_learning_rate=1e-2, **{**TINY, "model": {"n_filters_scale": 1, "gridsize": 2}})
    train(config, data, tmp_path / "model")
    refined = load_bundle(tmp_path / "model").model.probe_variables.numpy()
    with load_dataset(data) as ds, load_dataset(guess) as g:
        before, after = overlap(g.probe, ds.probe), overlap(refined, ds.probe)
        assert probe_energy(refined) == pytest.approx(probe_energy(ds.probe), rel=GAUGE_RTOL)
    assert after > before + 0.01, (before, after)  # observed 0.680 → 0.699


def test_iterative_initialisation_recovers_the_probe_and_infer_uses_it(scan, tmp_path, monkeypatch):
    data, guess = scan
    config = TrainConfig(epochs=1, refine_probe=True, probe_init_passes=30, probe_file=str(guess), **TINY)
    train(config, data, tmp_path / "model")
    bundle = load_bundle(tmp_path / "model")
    refined = bundle.model.probe_variables.numpy()
    with load_dataset(data) as ds, load_dataset(guess) as g:
        assert overlap(g.probe, ds.probe) < 0.9
        assert overlap(refined, ds.probe) > 0.98
    assert bundle.data_info["probe_init_passes"] == 30
    assert (bundle.probe_source.source, bundle.probe_source.file) == ("refined", str(guess))

    # infer's input estimate is made with the bundle's probe, never the dataset's stale one
    import ptycho.models.features as features
    from ptycho.config.infer import InferConfig
    from ptycho.workflows.infer import infer

    seen = {}
    original = features.input_estimate

    def spy(model_config, dataset):
        seen["probe"] = np.array(dataset.probe)
        return original(model_config, dataset)

    monkeypatch.setattr(features, "input_estimate", spy)
    with load_dataset(data) as ds, load_dataset(guess) as g:
        stale = ds.probe * np.sqrt(probe_energy(ds.probe) / probe_energy(g.probe))
        save_dataset(tmp_path / "stale.npz", type(ds)(ds.read_patterns(), ds.x, ds.y, g.probe * np.sqrt(
            probe_energy(ds.probe) / probe_energy(g.probe)), ds.object))
    result = infer(InferConfig(), tmp_path / "model", tmp_path / "stale.npz", tmp_path / "patches.h5")
    assert result.probe == f"model: refined in training (from file {guess})"
    assert overlap(seen["probe"], refined) == pytest.approx(1.0, abs=1e-6)
    assert probe_energy(seen["probe"]) == pytest.approx(probe_energy(stale), rel=GAUGE_RTOL)


@pytest.mark.parametrize("command", ["train", "infer", "iterative"])
def test_a_probe_file_of_another_size_exits_3(scan, tmp_path, invoke, command):
    data, _ = scan
    big = SimulateConfig(N=64, scan={"n_images": 1})
    simulate(big, tmp_path / "big.npz", preview=False)
    args = {"train": ("train", data, "--out", tmp_path / "m", "--epochs", "1"),
            "infer": ("infer", tmp_path / "no-model", data, "--out", tmp_path / "p.h5"),
            "iterative": ("iterative", data, "--out", tmp_path / "o.npz", "--iterations", "1")}[command]
    plugins = ()
    if command == "iterative":
        from ptycho_iterative import plugin as iterative_plugin

        plugins = (iterative_plugin,)
    if command == "infer":  # a real bundle, so the probe is what fails
        train(TrainConfig(epochs=1, **TINY), data, tmp_path / "no-model")
    result = invoke(*args, "--probe", tmp_path / "big.npz", plugins=plugins)
    assert result.exit_code == 3, result.output
    assert "probe is 64×64" in result.stderr and str(tmp_path / "big.npz") in result.stderr
