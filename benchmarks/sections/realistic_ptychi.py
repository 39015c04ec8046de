"""Arm (e) of the ``realistic`` section: pty-chi's LSQML-Poisson with the probe (two modes from the
guess) and the positions optimised, on the test scan — an external reference for how far the
positions can be recovered from these counts (issue 12). Optional: pty-chi and torch are not
dependencies of ptycho; without them the arm is ``skipped`` and its rows say n/a with the reason.

The position correction is pty-chi's gradient correction from epoch 10 with its per-update limit
(:class:`benchmarks.ptychi_adapter.Refinement`), with the same total bound as arm (a)
(``max_shift_px`` per axis from the nominal positions, mean offset removed); minibatches of
:data:`BATCH_SIZE` and a position step of :data:`POSITION_STEP`, not pty-chi's defaults (100 and
0.3), which left the object and the positions far from converged after 200 epochs on this scan
(benchmarks/RESULTS.md, 2026-12-02). The result is written as arm (a)'s files are (the object
with its refined positions, ``<stem>.probe.npz``) and scored by the same
:func:`~benchmarks.sections.realistic_arms.iterative_scores`.
``wall_s`` is in-process: reading the patterns, pty-chi's set-up and the epochs (not the import of
pty-chi and torch, not the scoring of the trajectory): no command start-up, unlike (a)'s.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

PROBE_MODES = 2
"""Modes of the optimised probe, as arm (a)'s ``--probe-modes 2``."""
BATCH_SIZE = 20
"""Positions per LSQML minibatch: 20 updates per epoch on the 398-position test scan (with
pty-chi's 100, phase SSIM 0.691 after 200 epochs against 0.815)."""
POSITION_STEP = 2.0
"""pty-chi's ``probe_position_options.step_size``. Its gradient step divides by the window's
``Σ|P·∂O|²`` *plus the batch maximum*, so 2.0 is at most a full Gauss–Newton step (for the
strongest window of a batch) and less for the rest; pty-chi's 0.3 moved the positions 0.96 →
0.86 px in 200 epochs, 2.0 to 0.66 px (benchmarks/RESULTS.md, 2026-12-02)."""
TRACE_EVERY = 20
"""Epochs between the scored states of the trajectory (positions, object SSIMs)."""


def trajectory_recorder(test_ds: str, truth: dict[str, np.ndarray], every: int) -> tuple[list[dict[str, Any]], Any]:
    """A list and the callback that fills it with ``{epoch, seconds, position_rms_px, phase_ssim,
    amplitude_ssim}`` every ``every`` epochs (the object scored like ``ptycho evaluate``)."""
    from benchmarks.scoring import headline, score
    from benchmarks.sections.realistic_arms import position_rms
    from ptycho.io.objects import read_object

    reference = read_object(test_ds)
    states: list[dict[str, Any]] = []

    def on_epoch(state: Any) -> None:
        if state.epoch % every:
            return
        x, y = state.positions()
        metrics = headline(score(state.image(), reference))
        states.append({"epoch": state.epoch, "seconds": state.seconds,
                       "position_rms_px": position_rms(x, y, truth["test_x_true"], truth["test_y_true"]),
                       "phase_ssim": metrics["phase_ssim"], "amplitude_ssim": metrics["amplitude_ssim"]})

    return states, on_epoch


def task_ptychi(test_ds: str, truth: str, work: str, epochs: int, max_shift_px: float | None,
                batch_size: int = BATCH_SIZE, position_step: float = POSITION_STEP,
                trace_every: int = TRACE_EVERY) -> dict[str, Any]:
    """Arm (e): LSQML-Poisson, probe + position correction, ``epochs`` epochs on the test scan;
    ``{"skipped": reason}`` when pty-chi does not import."""
    from benchmarks.ptychi_adapter import Refinement, available, reconstruct_lsqml
    from benchmarks.sections.realistic_arms import iterative_scores
    from ptycho.io.datasets import load_dataset
    from ptycho.io.objects import ScanPositions, write_object

    ok, version = available()
    if not ok:
        return {"skipped": version}
    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    with np.load(truth, allow_pickle=False) as t:
        true = {k: t[k] for k in t.files}
    refine = Refinement(probe_modes=PROBE_MODES, positions=True, position_step=position_step,
                        max_shift_px=max_shift_px)
    states, on_epoch = trajectory_recorder(test_ds, true, trace_every)
    with load_dataset(test_ds) as ds:
        result = reconstruct_lsqml(ds, epochs, batch_size=batch_size, refine=refine, callback=on_epoch)
    out = work_dir / "ptychi.npz"
    positions = ScanPositions(np.arange(len(result["x"]), dtype=np.int64), result["x"], result["y"])
    write_object(out, replace(result["image"], positions=positions))
    np.savez(out.with_name(f"{out.stem}.probe.npz"), probe=result["probe"])
    scores = iterative_scores(out, test_ds, truth)
    scores.pop("figure", None)
    return {**scores, "wall_s": result["setup_seconds"] + result["seconds"],
            "epochs": epochs, "batch_size": batch_size, "version": version, "settings": refine.__dict__,
            "trajectory": states,
            "commands": [f"{version}: LSQML-Poisson, {epochs} epochs, probe {PROBE_MODES} modes + "
                         f"position correction (benchmarks.ptychi_adapter)"]}
