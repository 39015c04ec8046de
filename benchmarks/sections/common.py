"""Child tasks several sections use: simulate a dataset, save an untrained model bundle, measure
the matmul rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def task_simulate(config: dict[str, Any], out: str) -> dict[str, Any]:
    """Simulate ``config`` (a ``SimulateConfig`` as plain data) to ``out`` (no preview)."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.workflows.simulate import simulate

    result = simulate(SimulateConfig.model_validate(config), Path(out), preview=False)
    return {"n_patterns": result.n_patterns, "seconds": result.seconds}


def task_simulate_many(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`task_simulate` for each ``{"config": ..., "out": ...}`` in turn."""
    return {"results": [task_simulate(**job) for job in jobs]}


def task_make_bundles(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`task_make_bundle` for each job (keyword dicts) in turn."""
    return {"results": [task_make_bundle(**job) for job in jobs]}


def task_make_bundle(dataset: str, out: str, gridsize: int, n_filters_scale: int = 2) -> dict[str, Any]:
    """Save an untrained default PINN for ``dataset``'s probe at ``gridsize`` as a bundle in ``out``:
    inference speed and memory do not depend on the weights. The group canvas is sized from the
    dataset's own groups, as ``train`` would."""
    from benchmarks.flops import flops_record, pinn_flops
    from ptycho.config.train import TrainConfig
    from ptycho.data.grouping import make_groups
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import History, save_bundle
    from ptycho.models.features import group_labels
    from ptycho.models.physics import canvas_size
    from ptycho.models.pinn import PINN, PhysicsSettings
    from ptycho.registry import Components
    from ptycho.workflows.train import resolve_model_config

    config = TrainConfig(model={"gridsize": gridsize, "n_filters_scale": n_filters_scale})
    with load_dataset(dataset) as ds:
        model_config = resolve_model_config(config, ds)
        groups = make_groups(ds.x, ds.y, gridsize, labels=group_labels(model_config, ds.n_patterns))  # as train()
        physics = PhysicsSettings.from_probe(ds.probe, gridsize, canvas_size(groups.max_offset, ds.N))
        model = PINN(model_config, physics, ds.probe, Components.builtin())
        info = {"path": str(dataset), "fingerprint": ds.fingerprint(), "n_patterns": ds.n_patterns,
                "note": "untrained (benchmark bundle)"}
    save_bundle(Path(out), model, train_config=config, history=History(), data_info=info)
    return {"bundle": out, "n_parameters": int(sum(int(v.numpy().size) for v in model.network.weights)),
            "flops": flops_record(pinn_flops(model, config.batch_size))}


def model_flops(bundle: str | Path, dataset: str | Path, estimate_passes: Any = None) -> dict[str, Any]:
    """A bundle's FLOPs per pattern (:func:`benchmarks.flops.pinn_flops` at its training batch
    size, as plain data) and, as ``prepass``, those of the global-estimate pre-pass its model makes
    for ``dataset`` (by kind and ``total``, per pattern, with ``n_patterns``; all 0 when the model
    reads no global estimate; ``estimate_passes`` are the passes each estimate ran, as ``infer``
    reports them in ``estimate_passes_run``; default ``global_passes`` each)."""
    from benchmarks.flops import flops_record, pinn_flops
    from benchmarks.flops_iterative import prepass_flops
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import load_bundle

    loaded = load_bundle(Path(bundle))
    with load_dataset(dataset) as ds:
        total = prepass_flops(loaded.model.config, ds.x, ds.y, ds.N, estimate_passes)
        n = ds.n_patterns
    record = flops_record(pinn_flops(loaded.model, loaded.train_config.batch_size))
    return {**record, "prepass": {**(total * (1.0 / n)).as_dict(), "n_patterns": n}}


def task_matmul_rates(n: int, repeats: int) -> dict[str, Any]:
    """:func:`benchmarks.matmul.matmul_rates` (TensorFlow and NumPy float32 GEMM)."""
    from benchmarks.matmul import matmul_rates

    return matmul_rates(n, repeats)
