"""``export-ptychodus`` writes the result's own probe: the refined probe of ``ptycho iterative
--probe-update`` (read back with Ptychodus' own reader), or the file ``--probe`` names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ptycho.io.datasets import load_dataset, load_probe
from tests.test_import import _simulate, expect_refusal

PHYSICS = ("--photon-energy-ev", "8000", "--detector-distance-m", "2", "--pixel-size-m", "1e-8")


@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    """A dataset and an iterative result of it that refined the probe (few passes: only the file matters)."""
    from ptycho_cli.testing import invoke as invoke_installed

    folder = tmp_path_factory.mktemp("iter")
    data = _simulate(folder, 32, n_images=10)
    result = invoke_installed("iterative", data, "--iterations", "2", "--probe-update", "--no-figures",
                              "--out", folder / "rpie.npz", "--quiet")
    assert result.exit_code == 0, result.output
    return data, folder / "rpie.npz"


def _export(invoke, obj, data, out, *extra):
    result = invoke("export-ptychodus", obj, "--dataset", data, "--out", out, *PHYSICS, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_iterative_result_exports_its_refined_probe(invoke, refined, tmp_path):
    from ptychodus.api.io import load_product

    data, obj = refined
    rows = _export(invoke, obj, data, tmp_path / "product.h5")
    assert rows["probe"] == "result (refined, rpie.probe.npz)"
    refined_probe = load_probe(obj.with_name("rpie.probe.npz"))
    with load_dataset(data) as ds:
        guess = np.asarray(ds.probe)
    assert not np.allclose(refined_probe, guess, atol=1e-3)  # the update did move it: the test can tell them apart
    theirs = load_product(tmp_path / "product.h5").probes.get_array()  # Ptychodus' own reader: (1, K, N, N)
    np.testing.assert_array_equal(theirs.reshape(refined_probe.shape), refined_probe)


def test_probe_flag_overrides_the_result_and_missing_refined_probe_is_refused(invoke, refined, tmp_path):
    from ptycho.io.ptychodus import read_ptychodus_product

    data, obj = refined
    rows = _export(invoke, obj, data, tmp_path / "p.h5", "--probe", data)  # the dataset's probe, asked for
    assert rows["probe"] == f"file {data} (export.probe)"
    with load_dataset(data) as ds:
        np.testing.assert_array_equal(read_ptychodus_product(tmp_path / "p.h5").probe.reshape(ds.probe.shape),
                                      ds.probe)
    moved = tmp_path / "alone.npz"
    moved.write_bytes(obj.read_bytes())  # the object file without its rpie.probe.npz companion
    out = tmp_path / "q.h5"
    result = invoke("export-ptychodus", moved, "--dataset", data, "--out", out, *PHYSICS)
    expect_refusal(result, out, "refined its probe", "rpie.probe.npz", "set --probe")
