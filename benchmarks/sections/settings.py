"""Section ``settings`` (only with ``--only settings``): which XLA, batch-size and thread setting is
fastest for training and for inference, measured, so that defaults follow the measurement.

For every gridsize and TensorFlow thread count (``TF_NUM_INTRAOP_THREADS`` and
``TF_NUM_INTEROP_THREADS``, set before TensorFlow starts; 0 leaves TensorFlow's own choice, which is
what ``ptycho`` runs with today) one fresh process measures every XLA × batch-size variant in turn:

* **train**: the default PINN's training step (:func:`benchmarks.sections.train.timed_epochs`:
  warm-up and compilation apart, about ``settings_train_groups`` groups per timed epoch), the
  input estimate made once per process and not timed;
* **infer**: the whole ``infer()`` of an untrained default bundle on the sim section's
  ``settings_infer_patterns``-pattern file (bundle load, grouping, the global-estimate pre-pass,
  compilation, reading and writing included), with the network's own throughput beside it.

The fastest variant is the one with the most patterns per second (train: step throughput; infer:
whole ``infer()``), stated per gridsize in a row and a note. The batch size also changes how
training optimises (steps per epoch, gradient noise): the fastest training batch is a speed result,
not a quality one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError, import_tensorflow
from benchmarks.context import Context, sim_config
from benchmarks.report import Section, row

DEFAULTS = {"train": {"jit": True, "batch": 16, "threads": 0}, "infer": {"jit": True, "batch": 64, "threads": 0}}
"""Today's defaults (``TrainConfig``/``InferConfig``, TensorFlow's own thread choice)."""


def use_threads(threads: int) -> None:
    """Ask TensorFlow, not yet imported, for ``threads`` intra- and inter-op threads (0: its own choice)."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow is already imported: its thread pools are fixed")
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)


def os_threads() -> int | None:
    """Threads of this process now (``/proc/self/status``): shows the thread setting took effect."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return None


def task_train_settings(dataset: str, gridsize: int, threads: int, jits: list[bool], batches: list[int],
                        n_filters: int, groups_per_epoch: int, epochs: int) -> dict[str, Any]:
    """Every ``jits`` × ``batches`` training variant at one gridsize and thread count."""
    use_threads(threads)
    import_tensorflow()
    from benchmarks.sections.train import prepared_trainer, timed_epochs

    estimates: dict[Any, Any] = {}
    results = []
    for jit in jits:
        for batch in batches:
            trainer, data = prepared_trainer(dataset, gridsize, jit, batch, n_filters,
                                             max(groups_per_epoch // batch, 2), estimates)
            timed = timed_epochs(trainer, data, gridsize**2, epochs)
            results.append({"jit": jit, "threads": threads, "os_threads": os_threads(), **timed})
    return {"results": results}


def task_infer_settings(bundle: str, dataset: str, out: str, threads: int, jits: list[bool], batches: list[int],
                        n_groups: int | None) -> dict[str, Any]:
    """Every ``jits`` × ``batches`` variant of the whole ``infer()`` at one thread count."""
    use_threads(threads)
    import_tensorflow()
    from ptycho.config.infer import InferConfig
    from ptycho.workflows.infer import infer

    results = []
    for jit in jits:
        for batch in batches:
            t0 = time.perf_counter()
            r = infer(InferConfig(jit=jit, batch_size=batch, n_groups=n_groups), Path(bundle), Path(dataset), Path(out))
            wall = time.perf_counter() - t0
            Path(out).unlink()
            patterns = r.n_groups * r.gridsize**2
            results.append({"jit": jit, "batch": batch, "threads": threads, "os_threads": os_threads(),
                            "wall_s": wall, "stage_seconds": r.stage_seconds, "patterns": patterns,
                            "patterns_per_second": patterns / wall,
                            "network_patterns_per_second": r.patterns_per_second})
    return {"results": results}


def threads_text(threads: int) -> str:
    return {0: "TensorFlow's threads", 1: "1 thread"}.get(threads, f"{threads} threads")


def setting_text(r: dict[str, Any]) -> str:
    return f"XLA {'on' if r['jit'] else 'off'}, batch {r['batch']}, {threads_text(r['threads'])}"


def is_default(r: dict[str, Any], kind: str) -> bool:
    return all(r[k] == v for k, v in DEFAULTS[kind].items())


def fastest_rows(kind: str, gridsize: int, results: list[dict[str, Any]],
                 key: str = "patterns_per_second", what: str = "") -> tuple[list[Any], str]:
    """The row of the variant with the highest ``key`` and the default's share of it, and a
    sentence for the notes; ``what`` qualifies the measure (e.g. "network only")."""
    best = max(results, key=lambda r: r[key])
    default = next((r for r in results if is_default(r, kind)), None)
    label = f"{kind}, gridsize {gridsize}" + (f", {what}" if what else "")
    rows = [row(f"fastest {kind} setting", best[key], unit="patterns/s", config=label, note=setting_text(best))]
    sentence = f"fastest for {kind}{f' ({what})' if what else ''} at gridsize {gridsize}: {setting_text(best)} ({best[key]:.0f} patterns/s"
    if default is not None:
        share = default[key] / best[key]
        rows.append(row(f"today's default / fastest ({kind})", share, unit="×", config=label,
                        note=f"default {setting_text(default)}: {default[key]:.0f} patterns/s"))
        sentence += f"; today's default {setting_text(default)} reaches {share:.2f}× of it"
    return rows, sentence + ")"


def grid_rows(kind: str, gridsize: int, results: list[dict[str, Any]], batches: list[int]) -> dict[str, list[str]]:
    """``{"train gs1, XLA on, 2 threads": [patterns/s per batch size, …]}``."""
    out: dict[str, list[str]] = {}
    for r in results:
        name = f"{kind} gs{gridsize}, XLA {'on' if r['jit'] else 'off'}, {threads_text(r['threads'])}"
        cells = out.setdefault(name, ["—"] * len(batches))
        cells[batches.index(r["batch"])] = f"{r['patterns_per_second']:.0f}"
    return out


def variant_row(kind: str, gridsize: int, r: dict[str, Any]) -> Any:
    if kind == "train":
        note = (f"step throughput after a {r['warmup_s']:.1f} s warm-up/compile; per epoch "
                f"{min(r['patterns_per_second_per_epoch']):.0f}–{max(r['patterns_per_second_per_epoch']):.0f}"
                + ("" if r["finite"] else "; NON-FINITE LOSS"))
    else:
        note = (f"whole infer() {r['wall_s']:.1f} s for {r['patterns']:,} patterns; network "
                f"{r['network_patterns_per_second']:.0f} patterns/s")
    note += f"; {r['os_threads']} OS threads" if r.get("os_threads") else ""
    return row(f"{kind} throughput", r["patterns_per_second"], unit="patterns/s",
               config=f"gridsize {gridsize}, {setting_text(r)}", note=note)


def measure(ctx: Context, sec: Section, kind: str, label: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every thread count's process for one kind (and gridsize, ``label``); the variants' results."""
    results: list[dict[str, Any]] = []
    for threads in ctx.sizes.settings_threads:
        try:
            results += ctx.child("settings", f"{kind}_settings", threads=threads, **kwargs)["results"]
        except ChildError as exc:
            sec.error(f"{kind} {label}, threads {threads}", exc)
    return results


def run(ctx: Context) -> Section:
    s = ctx.sizes
    jits = [True, False]
    sec = Section("settings", f"fastest XLA / batch / thread setting (train N={s.train_N}, infer N={s.sim_N}, "
                              f"threads {', '.join(str(t) for t in s.settings_threads)}; 0 = TensorFlow's choice)")
    train_ds, infer_ds = ctx.datasets_for([(sim_config(s.train_N, s.train_positions), "train"),
                                           (sim_config(s.sim_N, s.settings_infer_patterns), "sim")])
    bundles = {gs: ctx.work / "models" / f"settings-N{s.sim_N}-gs{gs}" for gs in s.settings_gridsizes}
    try:
        ctx.child("common", "make_bundles", jobs=[{"dataset": str(infer_ds), "out": str(path), "gridsize": gs}
                                                  for gs, path in bundles.items()])
    except ChildError as exc:
        sec.error("untrained bundles", exc)
        bundles = {}
    grid: dict[str, list[str]] = {}
    batches = sorted(set(s.settings_train_batches) | set(s.settings_infer_batches))
    for gs in s.settings_gridsizes:
        runs = {
            "train": measure(ctx, sec, "train", f"gs{gs}", dataset=str(train_ds), gridsize=gs, jits=jits,
                             batches=list(s.settings_train_batches), n_filters=s.train_filters,
                             groups_per_epoch=s.settings_train_groups, epochs=s.train_epochs),
            "infer": measure(ctx, sec, "infer", f"gs{gs}", bundle=str(bundles[gs]), dataset=str(infer_ds),
                             out=str(ctx.work / f"settings-gs{gs}.h5"), jits=jits, batches=list(s.settings_infer_batches),
                             n_groups=None if gs == 1 else s.settings_infer_patterns // gs**2) if gs in bundles else [],
        }
        for kind, results in runs.items():
            sec.raw[f"{kind}_gs{gs}"] = results
            if not results:
                continue
            sec.add(*(variant_row(kind, gs, r) for r in results))
            measures = [("patterns_per_second", "whole infer()" if kind == "infer" else "")]
            if kind == "infer":
                measures.append(("network_patterns_per_second", "network only, steady state"))
            for key, what in measures:
                rows, sentence = fastest_rows(kind, gs, results, key, what)
                sec.add(*rows)
                sec.notes.append(sentence)
            grid.update(grid_rows(kind, gs, results, batches))
    sec.grid = {"title": "patterns/s by batch size (train: step throughput; infer: whole infer())",
                "columns": [f"batch {b}" for b in batches], "rows": grid}
    sec.notes.append("one process per kind, gridsize and thread count; variants in turn in it. Timings are "
                     "meaningful only with the machine otherwise idle (see the load average).")
    if ctx.quick:
        sec.notes.append("quick mode: tiny sizes; the ranking means nothing at this size")
    return sec
