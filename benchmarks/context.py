"""What every section shares: the sizes, a work folder for datasets and models, and the datasets
already simulated (the infer section reuses the sim section's files)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.child import run_child
from benchmarks.sizes import Sizes


SILENT_KEYS = ("work", "out")


def sim_config(N: int, n_images: int, **extra: Any) -> dict[str, Any]:
    """A ``SimulateConfig`` as plain data: the default scene (lines, random scan, 1e9 photons,
    Poisson noise) at pattern size ``N`` with ``n_images`` positions, updated by ``extra``."""
    from ptycho.config.merge import deep_merge

    return deep_merge({"N": N, "scan": {"n_images": n_images}}, extra)


@dataclass
class Context:
    sizes: Sizes
    work: Path
    datasets: dict[str, Path] = field(default_factory=dict)
    out: Path | None = None  # the results folder (figures go there), when known
    stem: str = "benchmarks"  # the result files' name without suffix
    matmul: dict[str, Any] = field(default_factory=dict)  # benchmarks.machine.measure_matmul of this run

    def matmul_rate(self, library: str) -> dict[str, Any] | None:
        """This run's float32 matmul record of ``library`` ("tensorflow" or "numpy"), if measured."""
        rate = self.matmul.get(library)
        return rate if isinstance(rate, dict) and rate.get("gflops") else None

    def rates(self) -> dict[str, dict[str, Any] | None]:
        """:meth:`matmul_rate` of both libraries, by name."""
        return {library: self.matmul_rate(library) for library in ("tensorflow", "numpy")}

    @property
    def quick(self) -> bool:
        return self.sizes.mode.startswith("quick")

    def child(self, section: str, task: str, **kwargs: Any) -> dict[str, Any]:
        """Run one measurement in a fresh process (:func:`~benchmarks.child.run_child`), saying so
        on stderr: a full run is long and otherwise silent."""
        shown = {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool)) and k not in SILENT_KEYS}
        args = ", ".join(f"{k}={Path(v).name if isinstance(v, str) and '/' in v else v}" for k, v in shown.items())
        print(f"    {time.strftime('%H:%M:%S')} {section}.{task}({args}) …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            return run_child(section, task, timeout_s=self.sizes.child_timeout_s, **kwargs)
        finally:
            print(f"    {time.strftime('%H:%M:%S')} {section}.{task} finished after {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)

    def dataset(self, config: dict[str, Any], stem: str = "data") -> Path:
        """The dataset simulated with ``config``, made once per run and shared by every section
        asking for the same config."""
        return self.datasets_for([(config, stem)])[0]

    def datasets_for(self, wanted: list[tuple[dict[str, Any], str]]) -> list[Path]:
        """Paths of the datasets ``[(config, stem), ...]``; the missing ones are simulated together
        in one child process (one TensorFlow start-up)."""
        paths, missing = [], []
        for config, stem in wanted:
            key = config_key(config)
            path = self.datasets.get(key)
            if path is None or not path.is_file():
                path = self.work / "data" / f"{stem}-{key}.h5"
                missing.append({"config": config, "out": str(path)})
            paths.append(path)
        if missing:
            (self.work / "data").mkdir(parents=True, exist_ok=True)
            self.child("common", "simulate_many", jobs=missing)
            for job in missing:
                self.register(Path(job["out"]), job["config"])
        return paths

    def register(self, path: Path, config: dict[str, Any]) -> None:
        """Make ``path`` (simulated with ``config``) available to :meth:`dataset`."""
        self.datasets[config_key(config)] = path


def config_key(config: dict[str, Any]) -> str:
    """A short, stable name for a simulation config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
