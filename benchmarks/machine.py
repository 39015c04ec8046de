"""A description of the machine and software the numbers were measured on (no TensorFlow import
here: versions come from the installed distributions' metadata, and the matmul rates are measured
in a child process, :func:`measure_matmul`)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("ptycho", "ptycho-iterative", "tensorflow", "keras", "numpy", "scipy", "h5py", "scikit-image")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe() -> dict[str, Any]:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count()
    return {
        "cpu_model": cpu_model(), "cpus_logical": os.cpu_count(), "cpus_available": available, "ram_gb": ram_gb(),
        "platform": platform.platform(), "python_executable": sys.executable, "versions": versions(),
        "load_start": load_average(),
    }


def measure_matmul(n: int, repeats: int, timeout_s: float = 600) -> dict[str, Any]:
    """The float32 matmul rates of TensorFlow and NumPy (:mod:`benchmarks.matmul`), measured in a
    fresh process; ``{"error": ...}`` when that fails (the rest of the run goes on)."""
    from benchmarks.child import ChildError, run_child

    try:
        result = run_child("common", "matmul_rates", timeout_s=timeout_s, n=n, repeats=repeats)
    except ChildError as exc:
        return {"error": str(exc).strip().splitlines()[-1][:300]}
    return {k: result[k] for k in ("tensorflow", "numpy")}


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "--short", "HEAD") or "?", "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "?", "dirty": None}
