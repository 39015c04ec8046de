"""Shared fixtures: small configurations and an in-process CLI runner."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def ptycho():
    """``ptycho(*args)`` runs ``ptycho`` in-process with built-ins only (session-scoped, so module-
    and session-scoped fixtures can train or simulate through the command line)."""
    from ptycho_cli.app import make_app

    def run(*args):
        return CliRunner().invoke(make_app(plugins=(), env={}), [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory):
    """Noise-free random scan of a 96-px object, N=32, 48 positions, HDF5: what the checkpoint,
    resume and train-safety tests train on (one simulation for all of them)."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.workflows.simulate import simulate

    path = tmp_path_factory.mktemp("small-scan") / "d.h5"
    simulate(SimulateConfig(N=32, noise=False, seed=3, object={"size": 96}, scan={"n_images": 48}), path, preview=False)
    return path


@pytest.fixture
def invoke(runner):
    """``invoke(*args, plugins=[...])`` runs ``ptycho`` in-process with built-ins only."""
    from ptycho_cli.app import make_app

    def _invoke(*args, plugins=(), env=None, **kwargs):
        app = make_app(plugins=plugins, env=env or {})
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return _invoke
