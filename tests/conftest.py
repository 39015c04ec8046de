"""Shared fixtures: small configurations and an in-process CLI runner."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """``invoke(*args, plugins=[...])`` runs ``ptycho`` in-process with built-ins only."""
    from ptycho_cli.app import make_app

    def _invoke(*args, plugins=(), env=None, **kwargs):
        app = make_app(plugins=plugins, env=env or {})
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return _invoke
