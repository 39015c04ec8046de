"""Mixed-state probes in ``simulate`` and the dataset files (docs/simulation.md#probe-modes): the
counts of K modes are the incoherent sum of K single-mode simulations, one mode is today's probe
bit for bit, every mode is written and read back, and bad mode requests exit with their code."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.io.datasets import load_dataset, load_probe
from ptycho.io.npz import save_npz_arrays
from ptycho.physics.modes import derive_modes, mode_powers, orthogonalise_modes, summed_intensity

SMALL = ["--N", "32", "--size", "72", "--n-images", "12", "--no-preview", "--quiet", "--seed", "2"]
ORTHOGONAL_ATOL = 1e-5
"""|⟨P_j, P_k⟩| / √(p_j p_k) of complex64 modes."""


def simulate(invoke, out, *args):
    result = invoke("simulate", *SMALL, *args, "--out", out)
    assert result.exit_code == 0, result.output
    return load_dataset(out)


def test_derived_modes_are_orthogonal_decay_geometrically_and_keep_the_power():
    from ptycho.config.physics import ProbeConfig
    from ptycho.physics.probe import ideal_probe

    base = ideal_probe(32, ProbeConfig()) * 7
    modes = derive_modes(base, 4, 0.5)
    powers = mode_powers(modes)
    assert powers.sum() == pytest.approx(mode_powers(base)[0], rel=1e-6)
    np.testing.assert_allclose(powers / powers.sum(), np.array([8, 4, 2, 1]) / 15, rtol=1e-5)
    flat = modes.reshape(4, -1).astype(np.complex128)
    gram = np.abs(flat.conj() @ flat.T) / np.sqrt(np.outer(powers, powers))
    np.testing.assert_allclose(gram, np.eye(4), atol=ORTHOGONAL_ATOL)
    np.testing.assert_array_equal(modes[0] != 0, base != 0)  # every mode shares the probe's support
    np.testing.assert_allclose(modes[0], base * np.sqrt(8 / 15), rtol=1e-5, atol=1e-6)


def test_orthogonalising_keeps_the_summed_intensity_and_sorts_the_modes():
    rng = np.random.default_rng(0)
    mixed = (rng.standard_normal((3, 16, 16)) + 1j * rng.standard_normal((3, 16, 16))).astype(np.complex64)
    mixed[2] *= 3
    ortho = orthogonalise_modes(mixed)
    np.testing.assert_allclose(summed_intensity(ortho), summed_intensity(mixed), rtol=1e-4)
    powers = mode_powers(ortho)
    assert np.all(np.diff(powers) <= 0)
    flat = ortho.reshape(3, -1).astype(np.complex128)
    off = np.abs(flat.conj() @ flat.T) / np.sqrt(np.outer(powers, powers))
    np.testing.assert_allclose(off, np.eye(3), atol=ORTHOGONAL_ATOL)


def test_two_modes_give_the_incoherent_sum_of_two_single_mode_simulations(invoke, tmp_path):
    with simulate(invoke, tmp_path / "mixed.npz", "--probe-modes", "2", "--no-noise") as mixed:
        modes, counts = mixed.probe, mixed.read_patterns()
        assert modes.shape == (2, 32, 32)
        assert mode_powers(modes).sum() == pytest.approx(1e9, rel=1e-5)
        assert mixed.metadata["mixed_state"]["modes"] == 2
        np.testing.assert_allclose(mixed.metadata["mixed_state"]["power_fractions"], [1 / 1.3, 0.3 / 1.3], rtol=1e-5)
    alone = []
    for k, mode in enumerate(modes):
        save_npz_arrays(tmp_path / f"mode{k}.npz", {"probe": mode})
        power = float(mode_powers(mode)[0])  # simulate at this mode's own photons: the same amplitude
        with simulate(invoke, tmp_path / f"alone{k}.npz", "--probe", f"file:{tmp_path / f'mode{k}.npz'}",
                      "--nphotons", repr(power), "--no-noise") as single:
            np.testing.assert_allclose(single.probe, mode, rtol=1e-5, atol=1e-6 * np.abs(mode).max())
            alone.append(single.read_patterns())
    np.testing.assert_allclose(counts, alone[0] + alone[1], rtol=1e-4, atol=1e-4 * counts.max())
    assert np.abs(alone[1]).sum() > 0.1 * np.abs(alone[0]).sum()  # the second mode is no rounding error


def test_one_mode_is_todays_simulation_bit_for_bit(invoke, tmp_path):
    with simulate(invoke, tmp_path / "plain.npz") as plain:
        probe, counts = plain.probe, plain.read_patterns()
        assert probe.shape == (32, 32) and "mixed_state" not in plain.metadata
    with simulate(invoke, tmp_path / "one.npz", "--probe-modes", "1") as one:
        np.testing.assert_array_equal(one.probe, probe)
        np.testing.assert_array_equal(one.read_patterns(), counts)
    save_npz_arrays(tmp_path / "stack.npz", {"probe": probe[None]})  # a (1, N, N) file is that probe
    with simulate(invoke, tmp_path / "stacked.npz", "--probe", f"file:{tmp_path / 'stack.npz'}") as stacked:
        assert stacked.probe.shape == (32, 32)
        np.testing.assert_array_equal(stacked.read_patterns(), counts)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_every_mode_is_written_and_read_back_and_simulates_again(invoke, tmp_path, suffix):
    first = tmp_path / f"first{suffix}"
    with simulate(invoke, first, "--probe-modes", "3") as ds:
        modes = ds.probe.copy()
    assert modes.shape == (3, 32, 32)
    np.testing.assert_array_equal(load_probe(first), modes)
    with simulate(invoke, tmp_path / "again.h5", "--probe", f"file:{first}") as again:
        np.testing.assert_array_equal(again.probe, modes)  # same gauge: the modes come back unchanged


@pytest.mark.parametrize("probe, code, message", [
    (None, 2, "simulate.probe.modes: Input should be greater than or equal to 1"),
    ((2, 16, 16), 3, "probe is 16×16 but N=32"),
    ((0, 32, 32), 3, "no modes"),
])
def test_bad_mode_requests_exit_with_their_code_and_one_line(invoke, tmp_path, probe, code, message):
    args = ["--probe-modes", "0"]
    if probe is not None:
        save_npz_arrays(tmp_path / "p.npz", {"probe": np.ones(probe, np.complex64)})
        args = ["--probe", f"file:{tmp_path / 'p.npz'}"]
    result = invoke("simulate", *SMALL, *args, "--out", tmp_path / "x.npz")
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()


def test_asking_another_number_of_modes_than_the_file_holds_exits_2(invoke, tmp_path):
    with simulate(invoke, tmp_path / "two.npz", "--probe-modes", "2"):
        pass
    result = invoke("simulate", *SMALL, "--probe", f"file:{tmp_path / 'two.npz'}", "--probe-modes", "3",
                    "--out", tmp_path / "x.npz")
    assert result.exit_code == 2, result.output
    assert "the probe has 2 modes but --probe-modes = 3" in result.output
