"""Section ``cluster``: ``ptycho train`` as one process vs two local workers (``--strategy
multiworker``, ``TF_CONFIG`` on free 127.0.0.1 ports), same dataset, global batch, seed and epochs.

Both workers run on this one machine and share its cores, so the ratio is what the multi-worker
path costs here (a second TensorFlow runtime, the gradient all-reduce over loopback gRPC, the
coordination service), **not** a speed-up: on 2 cores one process already uses both. A speed-up
needs workers with cores of their own. The loss curves of the two runs are compared too (they
differ only as the batch sums are split: float32 rounding that training carries along,
docs/cluster.md#global-batch-and-learning-rate).

Each run is the real command line in fresh processes, started and awaited (with a time limit) by
one child task; throughput is the chief's ``patterns/s`` (epochs after the first, so without the
XLA compilation), wall time includes TensorFlow's start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError
from benchmarks.context import Context, sim_config
from benchmarks.report import Section, row


def _free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _ptycho() -> list[str]:
    script = shutil.which("ptycho", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "ptycho_cli.app"]


def task_train_processes(dataset: str, work: str, workers: int, args: list[str], limit_s: float) -> dict[str, Any]:
    """``ptycho train DATASET --json ARGS`` as one plain process (``workers`` 0) or as ``workers``
    multi-worker processes on loopback ports; each process's summary, exit code and wall time."""
    root = Path(work)
    ports = _free_ports(workers)
    procs = []
    t0 = time.perf_counter()
    for rank in range(max(workers, 1)):
        own = root / f"worker{rank}"
        own.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        extra = []
        if workers:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                           "task": {"type": "worker", "index": rank}})
            extra = ["--strategy", "multiworker"]
        cmd = [*_ptycho(), "train", dataset, "--out", str(root / "model"), "--json", *args, *extra]
        procs.append(subprocess.Popen(cmd, cwd=own, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=max(limit_s - (time.perf_counter() - t0), 1))
            results.append({"exit_code": proc.returncode, "wall_s": time.perf_counter() - t0,
                            "summary": json.loads(stdout) if proc.returncode == 0 else None,
                            "stderr_tail": stderr.strip().splitlines()[-3:]})
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    history = json.loads((root / "model" / "history.json").read_text()) if results[0]["exit_code"] == 0 else {}
    return {"processes": results, "history": history}


def run(ctx: Context) -> Section:
    s = ctx.sizes
    sec = Section("cluster", f"train: one process vs two local workers (N={s.cluster_N}, global batch "
                             f"{s.cluster_batch}, {s.cluster_epochs} epochs, n_filters_scale {s.cluster_filters})")
    dataset = ctx.dataset(sim_config(s.cluster_N, s.cluster_positions), stem="cluster")
    args = ["--epochs", str(s.cluster_epochs), "--batch-size", str(s.cluster_batch), "--n-filters-scale",
            str(s.cluster_filters), "--seed", "0", "--set", "early_stopping_patience=null"]
    runs: dict[str, dict[str, Any]] = {}
    for name, workers in (("one process", 0), ("two workers", 2)):
        try:
            runs[name] = ctx.child("cluster", "train_processes", dataset=str(dataset), work=str(ctx.work / "cluster" / name),
                                   workers=workers, args=args, limit_s=0.9 * s.child_timeout_s)
        except ChildError as exc:
            sec.error(f"train, {name}", exc)
            continue
        failed = [p for p in runs[name]["processes"] if p["exit_code"] != 0]
        if failed:
            sec.error(f"train, {name}", f"exit code {failed[0]['exit_code']}: {' '.join(failed[0]['stderr_tail'])}")
            runs.pop(name)
    sec.raw.update(runs)
    config = f"{s.cluster_positions} positions, N={s.cluster_N}"
    for name, r in runs.items():
        chief = r["processes"][0]
        sec.add(row(f"train throughput, {name}", chief["summary"]["patterns/s"], unit="patterns/s", config=config,
                    note="epochs 2+ (compile excluded), patterns of the whole global batch"))
        sec.add(row(f"wall time, {name}", max(p["wall_s"] for p in r["processes"]), unit="s", config=config,
                    note="every process, TensorFlow start-up included"))
    if len(runs) == 2:
        one, two = runs["one process"], runs["two workers"]
        sec.add(row("two workers / one process", two["processes"][0]["summary"]["patterns/s"]
                    / one["processes"][0]["summary"]["patterns/s"], unit="×", config=config,
                    note=f"both workers share this machine's {os.cpu_count()} cores: multi-worker overhead, "
                         f"not a speed-up"))
        curves = [(a, b) for a, b in zip(one["history"]["loss"], two["history"]["loss"])]
        worst = max(abs(b - a) / abs(a) for a, b in curves) if curves else None
        sec.add(row("loss curves, largest relative difference", worst, config=config,
                    note=f"{len(curves)} epochs, same global batch and seed; only the batch sums are split "
                         f"(float32 rounding, carried along by training)"))
    sec.notes.append("the two workers run on the same machine: on 2 cores this measures overhead, not speed-up")
    return sec
