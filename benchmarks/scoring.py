"""Scoring a reconstruction in memory, exactly as ``ptycho evaluate`` scores a file, minus the figures
and files — for the many intermediate states of the iterative baseline. The final states are
also scored by :func:`ptycho.workflows.evaluate.evaluate` itself and the two are cross-checked."""

from __future__ import annotations

import time
from typing import Any

METRIC_KEYS = ("amplitude_ssim", "phase_ssim", "amplitude_psnr", "phase_psnr", "amplitude_mae", "phase_mae",
               "frc50_cycles_per_px", "amplitude_mean_ratio")


def score(recon: Any, truth: Any, config: Any = None) -> dict[str, Any]:
    """The metrics dict of ``compare_objects`` for ``recon`` against ``truth`` (both
    :class:`~ptycho.io.objects.ObjectImage`), cut and registered as ``evaluate`` does."""
    from ptycho.config.evaluate import EvaluateConfig
    from ptycho.workflows.evaluate import score_objects

    cmp, _, _ = score_objects(recon, truth, config or EvaluateConfig())
    return cmp.metrics


def headline(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The few numbers the report shows, from an ``evaluate``/``compare_objects`` metrics dict."""
    def get(*path: str) -> float | None:
        value: Any = metrics
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return None if value is None else float(value)

    return {
        "amplitude_ssim": get("amplitude", "ssim"), "phase_ssim": get("phase", "ssim"),
        "amplitude_psnr": get("amplitude", "psnr"), "phase_psnr": get("phase", "psnr"),
        "amplitude_mae": get("amplitude", "mae"), "phase_mae": get("phase", "mae"),
        "frc50_cycles_per_px": get("frc", "frc50_cycles_per_px"),
        "amplitude_mean_ratio": get("amplitude_mean", "ratio"),
    }


def scored(entry: dict[str, Any], image: Any, truth: Any) -> dict[str, Any]:
    """``entry`` with the :func:`headline` scores of ``image`` (or its ``score_error``)."""
    try:
        entry.update(headline(score(image, truth)))
    except Exception as exc:  # noqa: BLE001 - a state that cannot be scored is recorded, not fatal
        entry["score_error"] = str(exc)
    return entry


class TrajectoryRecorder:
    """An iterative run's scored trajectory and its set-up time.

    Create it just before the dataset is read: ``setup_s`` is the wall time from then to the start
    of the first iteration (reading, data preparation, the engine's set-up), since an engine's own
    clock (each entry's ``seconds``) counts its iterations only. Scoring is excluded from both.
    """

    def __init__(self, truth: Any) -> None:
        self.truth, self.started, self.trajectory = truth, time.perf_counter(), []
        self.setup_s: float | None = None

    def add(self, iteration: int, seconds: float, image: Any, **extra: Any) -> None:
        if self.setup_s is None:
            self.setup_s = time.perf_counter() - self.started - seconds
        self.trajectory.append(scored({"iteration": iteration, "seconds": seconds, **extra}, image, self.truth))

    def outcome(self, error: BaseException | None = None, **extra: Any) -> dict[str, Any]:
        out = {"trajectory": self.trajectory, "setup_s": self.setup_s or 0.0, **extra}
        return {**out, "error": f"{type(error).__name__}: {error}"} if error is not None else out
