"""Pydantic configuration models, one per command, plus the shared physics parts."""

from ptycho.config.base import StrictModel
from ptycho.config.physics import ObjectConfig, ProbeConfig, ScanConfig
from ptycho.config.simulate import SimulateConfig

__all__ = ["StrictModel", "ObjectConfig", "ProbeConfig", "ScanConfig", "SimulateConfig"]
