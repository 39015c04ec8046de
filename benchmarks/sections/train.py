"""Section ``train``: training-step throughput of the default PINN, XLA on vs off.

A PINN and its :class:`~ptycho.models.training.Trainer` are built exactly as ``train`` builds them,
a fixed set of batches is read into memory, one warm-up epoch compiles the step, and then
``Trainer.run_epoch`` is timed over several epochs. Data loading is excluded, so this is the step
throughput; the quality section reports the end-to-end epoch throughput of ``train`` itself. The
baseline is the same model and step with ``jit=False`` (the step still runs as a ``tf.function``),
measured right after it in the same process (one process per gridsize).
"""

from __future__ import annotations

import math
import time
from typing import Any

from benchmarks.child import ChildError, import_tensorflow
from benchmarks.context import Context, sim_config
from benchmarks.costs import efficiency_rows
from benchmarks.report import Section, Target, row

TARGETS = {1: 28.0, 2: 150.0}
EARLIER = {1: "same run: ours 3.7× (72–73 vs 259–275 patterns/s)", 2: "same run: ours 3.1× (≈260 vs 788–845)"}
"""The earlier implementation measured side by side with ours (4 interleaved pairs on one machine,
its own grid-lines workflow, N=64, batch 16; issue 16): only same-run ratios carry over."""


def task_step_throughputs(variants: list[bool], **kwargs: Any) -> dict[str, Any]:
    """:func:`task_step_throughput` for each ``jit`` in ``variants``, in this one process (each
    variant builds and compiles its own model)."""
    return {"results": [task_step_throughput(jit=jit, **kwargs) for jit in variants]}


def prepared_trainer(dataset: str, gridsize: int, jit: bool, batch: int, n_filters: int, n_batches: int,
                     estimates: dict[Any, Any] | None = None) -> tuple[Any, list[Any]]:
    """A default PINN and its ``Trainer`` built as ``train`` builds them, and ``n_batches`` batches
    of ``batch`` groups read into memory. The model's input estimate is made untimed, like
    ``train`` makes it once per dataset; with ``estimates`` (a dict kept by the caller) it is made
    once per dataset, gridsize and filter scale and reused."""
    import numpy as np

    from ptycho.config.train import TrainConfig
    from ptycho.data.grouping import make_groups
    from ptycho.data.pipeline import read_group_batch
    from ptycho.io.datasets import load_dataset
    from ptycho.models.features import group_labels, input_estimate
    from ptycho.models.physics import canvas_size
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.distribute.strategy import start_distribution
    from ptycho.models.training import Trainer
    from ptycho.registry import Components
    from ptycho.workflows.train import resolve_model_config

    config = TrainConfig(batch_size=batch, jit=jit, model={"gridsize": gridsize, "n_filters_scale": n_filters})
    with load_dataset(dataset) as ds:
        model_config = resolve_model_config(config, ds)
        groups = make_groups(ds.x, ds.y, gridsize, labels=group_labels(model_config, ds.n_patterns))  # as train()
        if groups.n_groups < batch * n_batches:
            raise ValueError(f"{dataset}: {groups.n_groups} groups, {batch * n_batches} needed")
        key = (dataset, gridsize, n_filters)
        estimate = estimates.get(key) if estimates is not None else None
        if estimate is None:
            estimate = input_estimate(model_config, ds)  # made once per dataset, like train(): not timed
            if estimates is not None:
                estimates[key] = estimate
        batches = [read_group_batch(ds, groups, np.arange(i * batch, (i + 1) * batch), estimate) for i in range(n_batches)]
        physics = PhysicsSettings.from_probe(ds.probe, gridsize, canvas_size(groups.max_offset, ds.N))
        strategy = start_distribution("default", config.cluster).strategy
        with strategy.scope():
            model = PINN(model_config, physics, ds.probe, Components.builtin())
            trainer = Trainer(model, config, strategy)
    return trainer, batches


def task_step_throughput(dataset: str, gridsize: int, jit: bool, batch: int, n_filters: int, n_batches: int,
                         epochs: int) -> dict[str, Any]:
    import_tensorflow()
    trainer, batches = prepared_trainer(dataset, gridsize, jit, batch, n_filters, n_batches)
    return {"gridsize": gridsize, "jit": jit, **timed_epochs(trainer, batches, gridsize**2, epochs)}


def timed_epochs(trainer: Any, batches: list[Any], members: int, epochs: int) -> dict[str, Any]:
    """Warm up (compile) on two batches, then time ``epochs`` epochs of ``Trainer.run_epoch`` over
    ``batches``; patterns = groups × ``members``. With the model's FLOP counts (after the clocks)."""
    from benchmarks.flops import flops_record, pinn_flops

    t0 = time.perf_counter()
    warm_loss = trainer.run_epoch(batches[:2], min(2, len(batches)), 0)
    warmup_s = time.perf_counter() - t0
    seconds, losses = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        losses.append(trainer.run_epoch(batches, len(batches), epoch + 1))
        seconds.append(time.perf_counter() - t0)
    batch = len(batches[0][0])
    patterns = len(batches) * batch * members
    flops = flops_record(pinn_flops(trainer.model, batch))
    return {
        "batch": batch, "warmup_s": warmup_s, "epoch_seconds": seconds,
        "patterns_per_epoch": patterns, "patterns_per_second": patterns * epochs / sum(seconds),
        "patterns_per_second_per_epoch": [patterns / s for s in seconds],
        "losses": [warm_loss, *losses],
        "finite": all(v is not None and math.isfinite(v) for v in [warm_loss, *losses]),
        "n_parameters": flops["n_parameters"], "flops": flops,
    }


def run(ctx: Context) -> Section:
    s = ctx.sizes
    sec = Section("train", f"training-step throughput (N={s.train_N}, batch {s.train_batch}, "
                           f"n_filters_scale {s.train_filters}, default model)")
    dataset = ctx.dataset(sim_config(s.train_N, s.train_positions), stem="train")
    for gs in s.train_gridsizes:
        results = {}
        try:
            both = ctx.child("train", "step_throughputs", variants=[True, False], dataset=str(dataset), gridsize=gs,
                             batch=s.train_batch, n_filters=s.train_filters, n_batches=s.train_batches,
                             epochs=s.train_epochs)
            results = {r["jit"]: r for r in both["results"]}
        except ChildError as exc:
            sec.error(f"train step gs{gs}", exc)
        sec.raw[f"gs{gs}"] = {("jit" if k else "no_jit"): v for k, v in results.items()}
        steps = s.train_batches * s.train_epochs
        for jit, r in sorted(results.items(), reverse=True):
            per_epoch = r["patterns_per_second_per_epoch"]
            name = "XLA (jit=True, default)" if jit else "baseline: jit=False"
            note = (f"{steps} steps after a {r['warmup_s']:.1f} s warm-up/compile; per epoch "
                    f"{min(per_epoch):.1f}–{max(per_epoch):.1f}")
            if not r["finite"]:
                note += "; NON-FINITE LOSS"
            sec.add(row(f"train throughput, {name}", r["patterns_per_second"], unit="patterns/s",
                        config=f"gridsize {gs}" + (" (groups/s × 4)" if gs == 2 else ""),
                        target=Target(">=", TARGETS[gs]) if jit and gs in TARGETS else None,
                        reference=EARLIER.get(gs, "") if jit else "", note=note))
        for jit, r in sorted(results.items(), reverse=True):
            sec.add(*efficiency_rows(f"training step, jit={jit}", f"gridsize {gs}, batch {s.train_batch}",
                                     r["flops"]["train_step"], r["patterns_per_second"], ctx.matmul_rate("tensorflow")))
        if len(results) == 2:
            sec.add(row("XLA speed-up (jit / no jit)", results[True]["patterns_per_second"]
                        / results[False]["patterns_per_second"], unit="×", config=f"gridsize {gs}"))
            sec.add(row("compile + first 2 steps, jit", results[True]["warmup_s"], unit="s", config=f"gridsize {gs}"))
    sec.raw["matmul"] = ctx.matmul
    sec.notes.append("training-step FLOPs = 3 × the forward pass (network, physics layers, Poisson loss) + Adam "
                     "(12 per parameter, shared by the batch), counted from the built model (benchmarks/flops.py)")
    if ctx.quick:
        sec.notes.append("quick mode: N=32, n_filters_scale 1, few steps; the targets are for N=64")
    return sec
