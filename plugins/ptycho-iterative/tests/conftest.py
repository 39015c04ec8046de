"""Shared fixtures: one small noise-free simulated dataset for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

SMALL = {"N": 32, "object": {"size": 80}, "scan": {"n_images": 100}, "noise": False}
"""The test scene: 100 random positions on an 80×80 lines object, exact counts."""


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """``small.npz``: N=32, 80×80 object, 100 positions, noise-free (ptycho's own simulator)."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.workflows.simulate import simulate

    path = tmp_path_factory.mktemp("data") / "small.npz"
    simulate(SimulateConfig(**SMALL), path, preview=False)
    return path


@pytest.fixture(scope="session")
def small(small_dataset):
    """The small dataset loaded into memory."""
    from ptycho.io.datasets import load_dataset

    with load_dataset(small_dataset) as ds:
        return ds.subset(range(ds.n_patterns))
