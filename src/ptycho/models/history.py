"""The per-epoch training record a bundle keeps (``history.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch training record."""

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nan_recoveries: int = 0
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    """One record per non-finite try: its epoch (1-based) and the learning rate it ran at."""
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": list(range(1, self.epochs + 1)),
            "loss": self.loss,
            "val_loss": self.val_loss,
            "learning_rate": self.learning_rate,
            "seconds": self.seconds,
            "nan_recoveries": self.nan_recoveries,
            "recoveries": self.recoveries,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(
            loss=list(data.get("loss", [])),
            val_loss=list(data.get("val_loss", [])),
            learning_rate=list(data.get("learning_rate", [])),
            seconds=list(data.get("seconds", [])),
            nan_recoveries=int(data.get("nan_recoveries", 0)),
            recoveries=[dict(r) for r in data.get("recoveries", []) if isinstance(r, dict)],
            stopped_early=bool(data.get("stopped_early", False)),
        )
