"""Measurements in fresh processes, one at a time.

The parent calls :func:`run_child`, which starts ``python -m benchmarks.child SECTION TASK JSON``
in the repository root and waits for it. The child calls ``benchmarks.sections.<SECTION>.task_<TASK>
(**kwargs)``, adds its own peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``, so the value
belongs to that measurement alone) and prints one result line, ``@@BENCH@@ {json}``, last on stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARKER = "@@BENCH@@ "


class ChildError(RuntimeError):
    """A child measurement exited with an error or printed no result."""


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (10⁶ bytes); Linux reports KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def current_rss_mb() -> float:
    """This process's resident set size now, in MB (10⁶ bytes)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return float("nan")


def import_tensorflow() -> float:
    """Import TensorFlow the way ptycho does (quiet start-up) and return the seconds it took, so a
    task can start its clock after it."""
    t0 = time.perf_counter()
    from ptycho._tf import tf

    tf()
    return time.perf_counter() - t0


def run_child(section: str, task: str, timeout_s: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``task`` of ``section`` in a fresh Python process and return its result dict.

    Raises
    ------
    ChildError
        Non-zero exit, timeout, or no result line; the message holds the tail of stderr.
    """
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "benchmarks.child", section, task, json.dumps(kwargs)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ChildError(f"{section}.{task} timed out after {timeout_s:.0f} s") from exc
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ChildError(f"{section}.{task} failed (exit code {proc.returncode}): {tail}")
    result = json.loads(lines[-1][len(MARKER):])
    result["process_wall_s"] = wall
    return result


def main(argv: list[str]) -> int:
    section, task, payload = argv
    module = importlib.import_module(f"benchmarks.sections.{section}")
    kwargs = json.loads(payload)
    result = getattr(module, f"task_{task}")(**kwargs)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    sys.stdout.flush()
    print(MARKER + json.dumps(result, allow_nan=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
