"""The arms of the regime map, each run in a child process on one cell's datasets.

* :func:`task_iterative` — rPIE, the ML engine and (when importable) pty-chi's LSQML-Poisson on the
  cell's *test* scan, every iteration scored like ``ptycho evaluate``; the parent picks each arm's
  best iteration (an oracle: a user does not have the truth) and the fixed budget.
* :func:`pinn_arm` — the network, trained on the cell's *training* scan and reconstructing the
  test scan (infer + stitch), then scored. The recipe lives in this one function so it can be
  swapped: today's default is ``ptycho train``'s defaults at gridsize 1 for ``epochs`` epochs.

Iterative results are scored over the bounding box of their illuminated pixels
(:func:`scan_box_image`), so that overlap-free scans can be scored at all.

Times: an iterative arm's clock starts before its dataset is read (loading, data preparation and
the engine's set-up count, scoring does not): ``setup_s`` plus the engine's ``seconds`` at an
iteration is that iteration's wall time. The PINN's reconstruction time is infer + stitch (bundle
load and XLA compilation included); its training is reported apart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.scoring import TrajectoryRecorder, headline, score


def scan_box_image(obj: Any, support: Any, origin_x: float, origin_y: float, metadata: dict[str, Any]) -> Any:
    """An iterative result as an ObjectImage supported on the *bounding box* of its illuminated
    pixels: on an overlap-free scan the illumination leaves holes between the windows, so its own
    support holds no rectangle worth scoring; scored over the box, the unconstrained pixels count
    as they are (ones where no probe reached), as the PINN's stitched object is scored."""
    import numpy as np

    from ptycho.io.objects import ObjectImage

    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    box = np.zeros(support.shape, bool)
    box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    return ObjectImage(np.where(box, obj, 0).astype(np.complex64), box, float(origin_x), float(origin_y), metadata)


def _engine_trajectory(test_ds: str, engine: str, iterations: int, truth: Any) -> dict[str, Any]:
    """One ptycho engine, every iteration scored, and its FLOPs per iteration."""
    from benchmarks.flops_iterative import engine_iteration_flops
    from ptycho.io.datasets import load_dataset
    from ptycho.iterative.engines import reconstruct

    record = TrajectoryRecorder(truth)

    def on_iteration(state: Any) -> None:
        r = state.result()
        record.add(state.iteration, state.seconds, scan_box_image(r.object, r.support, r.origin_x, r.origin_y, {}),
                   error=state.error)

    try:
        with load_dataset(test_ds) as ds:
            result = reconstruct(ds, engine=engine, iterations=iterations, callback=on_iteration)
            flops, n_patterns = engine_iteration_flops(ds, result.config), ds.n_patterns  # after the clocks
    except Exception as exc:  # noqa: BLE001 - e.g. NumericalError: an arm's failure is a result
        return record.outcome(exc)
    return record.outcome(info=result.info, flops_per_iteration=flops.as_dict(), n_patterns=n_patterns)


def _ptychi_trajectory(test_ds: str, epochs: int, truth: Any) -> dict[str, Any]:
    """pty-chi's LSQML-Poisson, every epoch scored (``skipped`` when pty-chi does not import)."""
    from benchmarks.ptychi_adapter import available, reconstruct_lsqml
    from ptycho.io.datasets import load_dataset

    ok, version = available()
    if not ok:
        return {"skipped": version}
    record = TrajectoryRecorder(truth)

    def on_epoch(state: Any) -> None:
        image = state.image(raw=True)
        record.add(state.epoch, state.seconds, scan_box_image(image.object, image.support, 0.0, 0.0, {}))

    try:
        with load_dataset(test_ds) as ds:
            reconstruct_lsqml(ds, epochs, callback=on_epoch)
    except Exception as exc:  # noqa: BLE001
        return record.outcome(exc, version=version)
    return record.outcome(version=version)


def task_iterative(test_ds: str, iterations: int, ptychi_epochs: int) -> dict[str, Any]:
    """rPIE, ML and pty-chi on one cell's test scan (pty-chi ``skipped`` when not importable).
    Libraries are imported before any clock starts (SciPy's FFT, like pty-chi and torch)."""
    import scipy.fft  # noqa: F401 - the engines import it on their first FFT

    from ptycho.io.objects import read_object

    truth = read_object(test_ds)
    return {
        "rpie": _engine_trajectory(test_ds, "rpie", iterations, truth),
        "ml": _engine_trajectory(test_ds, "ml", iterations, truth),
        "ptychi": _ptychi_trajectory(test_ds, ptychi_epochs, truth) if ptychi_epochs > 0 else {"skipped": "off"},
    }


def pinn_arm(cell: dict[str, Any], work: Path) -> dict[str, Any]:
    """The PINN on one cell: train on ``cell["train"]``, reconstruct ``cell["test"]``, score it.

    Today's recipe: ``TrainConfig`` defaults (the default model and input) at gridsize 1 for
    ``cell["epochs"]`` epochs; ``infer`` and ``stitch`` defaults (the stitch crop follows the scan
    spacing). Swap the recipe here; keep the returned keys.

    Returns
    -------
    dict with ``metrics`` (``benchmarks.scoring.headline``), ``train_s``, ``reconstruct_s``
    (infer + stitch wall time), ``infer_s``, ``stitch_s``, ``infer_stages`` (``InferResult.stage_seconds``:
    bundle load, grouping, pre-pass, network, reading/writing), ``network_patterns_per_second``,
    ``epochs``, ``recipe``; or ``error``.
    """
    from benchmarks.child import import_tensorflow
    from ptycho.config.infer import InferConfig
    from ptycho.config.stitch import StitchConfig
    from ptycho.config.train import TrainConfig
    from ptycho.errors import PtychoError
    from ptycho.io.objects import read_object
    from ptycho.workflows.infer import infer
    from ptycho.workflows.stitch import stitch
    from ptycho.workflows.train import train

    import_tensorflow()
    work = Path(work)
    config = TrainConfig(epochs=cell["epochs"], model={"gridsize": 1})
    recipe = f"ptycho train defaults, gridsize 1, {cell['epochs']} epochs, trained on the cell's training scan"
    t0 = time.perf_counter()
    try:
        trained = train(config, Path(cell["train"]), work / "model")
    except PtychoError as exc:
        return {"error": f"training: {exc}", "recipe": recipe}
    t1 = time.perf_counter()
    inferred = infer(InferConfig(), work / "model", Path(cell["test"]), work / "patches.h5")
    t2 = time.perf_counter()
    stitched = stitch(StitchConfig(), work / "patches.h5", work / "object.npz", figures=False)
    t3 = time.perf_counter()
    metrics = headline(score(read_object(work / "object.npz"), read_object(cell["test"])))
    return {"metrics": metrics, "train_s": t1 - t0, "infer_s": t2 - t1, "stitch_s": t3 - t2, "reconstruct_s": t3 - t1,
            "infer_stages": inferred.stage_seconds, "network_patterns_per_second": inferred.patterns_per_second,
            "epochs": trained.epochs, "stitch_crop": stitched.crop, "coverage": stitched.coverage, "recipe": recipe,
            "estimate_passes": list(inferred.estimate_passes), "estimate_passes_run": list(inferred.estimate_passes_run)}


def task_pinn(train_ds: str, test_ds: str, epochs: int, work: str) -> dict[str, Any]:
    """:func:`pinn_arm` in a child process, with the trained model's FLOPs per pattern (counted
    after the clocks: :func:`benchmarks.sections.common.model_flops`)."""
    from benchmarks.sections.common import model_flops

    try:
        result = pinn_arm({"train": train_ds, "test": test_ds, "epochs": epochs}, Path(work))
        if "error" not in result:
            result["flops"] = model_flops(Path(work) / "model", test_ds, result["estimate_passes_run"] or None)
        return result
    except Exception as exc:  # noqa: BLE001 - reported as the arm's error
        return {"error": f"{type(exc).__name__}: {exc}"}
