"""What a ``debug-ab`` run records while its stages run: progress events, each arm's state, and
each stage's comparison (shared by :mod:`ptycho.workflows.debug_ab` and its report)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptycho.debug.taps import TapComparison
from ptycho.debug.variants import Arm
from ptycho.workflows.pipeline import PipelinePaths

__all__ = ["ArmRun", "Event", "OnEvent", "StageResult"]


@dataclass(frozen=True)
class Event:
    """Progress of one arm in one stage. ``kind``: start, progress, done, failed."""

    arm: str
    title: str
    stage: str
    kind: str
    done: int = 0
    total: int = 0
    detail: str = ""
    seconds: float = 0.0


OnEvent = Callable[[Event], None]


@dataclass
class ArmRun:
    """One arm's state while the stages run: its files, taps, timings and figure material."""

    arm: Arm
    dir: Path
    taps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    error: tuple[str, str, int] | None = None  # (stage, one-line message, exit code)
    artefacts: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> PipelinePaths:
        return PipelinePaths(self.dir)

    def path(self, name: str) -> Path:
        return self.paths[name]


@dataclass(frozen=True)
class StageResult:
    """One stage compared: ``status`` is ``same``, ``diverged`` (taps beyond tolerance, or one arm
    failed) or ``failed`` (both arms failed)."""

    stage: str
    status: str
    taps: list[TapComparison]
    errors: dict[str, str]
    seconds: dict[str, float]

    @property
    def diverged_taps(self) -> list[TapComparison]:
        return [t for t in self.taps if t.diverged]
