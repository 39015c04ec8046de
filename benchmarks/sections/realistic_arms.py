"""The arms of the ``realistic`` section, each run in a child process as a user runs them: the
``ptycho`` commands themselves (``iterative``; ``train`` + ``infer`` + ``stitch``), then scored
against the scenario's truth (:mod:`benchmarks.sections.realistic_scenario`).

Scores per arm: phase / amplitude SSIM of the object (``ptycho evaluate``'s scorer,
:func:`benchmarks.scoring.score`); the refined probe's overlap ``|⟨p, q⟩|/(‖p‖‖q‖)`` with the
true dominant mode ``q`` (the refined modes orthogonalised, the strongest taken) — raw (a global
phase never matters) and after removing the probe's global sub-pixel translation, which
ptychography cannot fix (probe and object shifted together give the same counts; the object is
registered the same way before its SSIM); the positions' RMS error in pixels after removing the
mean shift, ``√mean|r − r_true − mean(r − r_true)|²``, beside the nominal positions' error.
Wall time is that of the commands (each pays its own Python and TensorFlow start-up).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scoring import headline, score
from benchmarks.sections.realistic_scenario import probe_overlap


def ptycho_command(args: list[str], log: Path) -> float:
    """Run ``ptycho ARGS`` (the console script beside this Python) and return its wall time;
    its output goes to ``log``. Raises RuntimeError with the log's tail when it fails."""
    exe = Path(sys.executable).with_name("ptycho")
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ ptycho {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run([str(exe), *args], stdout=out, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(Path(log).read_text(encoding="utf-8").strip().splitlines()[-6:])
        raise RuntimeError(f"ptycho {args[0]} exited with {proc.returncode}: {tail}")
    return time.perf_counter() - t0


def aligned_probe(probe: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """``probe``'s modes orthogonalised (strongest first), moved by the sub-pixel shift that
    registers its dominant mode onto ``truth``'s and given that mode's global phase; the shift."""
    from ptycho.metrics.registration import apply_shift, estimate_shift
    from ptycho.physics.modes import as_modes, orthogonalise_modes

    modes = orthogonalise_modes(as_modes(np.asarray(probe, np.complex64)))
    reference = as_modes(truth)[0]
    shift = estimate_shift(reference, modes[0], window=None)  # compact, zero-padded: periodic is exact
    moved = np.stack([apply_shift(m, shift) for m in modes])
    phase = np.vdot(moved[0].astype(np.complex128), reference.astype(np.complex128))
    return (moved * np.exp(1j * np.angle(phase))).astype(np.complex64), shift


def probe_scores(probe: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Overlap of the refined dominant mode with the true one, raw and after the global shift."""
    from ptycho.physics.modes import as_modes, mode_powers, orthogonalise_modes

    modes = orthogonalise_modes(as_modes(np.asarray(probe, np.complex64)))
    aligned, shift = aligned_probe(probe, truth)
    powers = mode_powers(modes)
    return {"overlap_raw": probe_overlap(modes[0], as_modes(truth)[0]),
            "overlap": probe_overlap(aligned[0], as_modes(truth)[0]),
            "shift_px": [float(shift[0]), float(shift[1])],
            "power_fractions": [float(p) for p in powers / powers.sum()]}


def position_rms(x: np.ndarray, y: np.ndarray, x_true: np.ndarray, y_true: np.ndarray) -> float:
    """RMS length of ``(x, y) − truth`` after removing its mean (pixels)."""
    dx, dy = np.asarray(x) - x_true, np.asarray(y) - y_true
    return float(np.sqrt(np.mean((dx - dx.mean()) ** 2 + (dy - dy.mean()) ** 2)))


def object_metrics(object_path: Path, dataset: str) -> dict[str, Any]:
    from ptycho.io.objects import read_object

    return headline(score(read_object(object_path), read_object(dataset)))


def refined_positions(object_path: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The refined positions an object file records for all ``n`` patterns, else None."""
    from ptycho.io.objects import read_object

    positions = read_object(object_path).positions
    if positions is None:
        return None
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    x[positions.index], y[positions.index] = positions.x, positions.y
    return x, y


def window_contrast(dataset: str, probe: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How much each window can tell about its position: the true object's gradient energy
    ``Σ|∇O|²·|P|² / Σ|P|²`` under the true probe's summed intensity at the true positions, ``(M,)``.
    A window over featureless specimen constrains its position weakly whatever the solver."""
    from ptycho.io.datasets import load_dataset
    from ptycho.physics.modes import summed_intensity
    from ptycho.physics.operators.geometry import window_geometry
    from ptycho.physics.operators.numpy_ops import extract

    with load_dataset(dataset) as ds:
        obj, N = np.asarray(ds.object, np.complex64), ds.N
    d_dy, d_dx = np.gradient(obj)
    windows = window_geometry(np.asarray(x, np.float64), np.asarray(y, np.float64), N)
    energy = np.abs(extract(d_dx.astype(np.complex64), windows)) ** 2 + np.abs(extract(d_dy.astype(np.complex64), windows)) ** 2
    weight = summed_intensity(np.asarray(probe, np.complex64))
    return (energy * weight).sum(axis=(1, 2)) / float(weight.sum())


def scored_positions(found: tuple[np.ndarray, np.ndarray] | None, truth: Any, scan: str,
                     dataset: str | None = None) -> dict[str, Any]:
    """Position errors of ``found`` (None: not refined) and of the nominal positions; with the
    scan's ``dataset``, also the RMS error in each quarter of the positions ranked by
    :func:`window_contrast` (``rms_by_contrast_px``, lowest contrast first; the mean shift removed
    over all positions, as in ``rms_px``)."""
    xt, yt = truth[f"{scan}_x_true"], truth[f"{scan}_y_true"]
    out: dict[str, Any] = {"nominal_rms_px": position_rms(truth[f"{scan}_x_nominal"], truth[f"{scan}_y_nominal"], xt, yt)}
    if found is not None:
        out["rms_px"] = position_rms(found[0], found[1], xt, yt)
        out["x"], out["y"] = [float(v) for v in found[0]], [float(v) for v in found[1]]
        if dataset is not None:
            dx, dy = found[0] - xt, found[1] - yt
            sq = (dx - dx.mean()) ** 2 + (dy - dy.mean()) ** 2
            quarters = np.array_split(np.argsort(window_contrast(dataset, truth["probe"], xt, yt), kind="stable"), 4)
            out["rms_by_contrast_px"] = [float(np.sqrt(sq[q].mean())) for q in quarters]
    return out


def task_iterative(test_ds: str, truth: str, work: str, iterations: int, max_shift_px: float) -> dict[str, Any]:
    """Arm (a): ``ptycho iterative --probe-update --probe-modes 2 --refine-positions`` on the test scan."""
    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / "iterative.npz"
    args = ["iterative", test_ds, "--probe-update", "--probe-modes", "2", "--refine-positions",
            "--iterations", str(iterations), "--set", f"iterative.position_max_shift_px={max_shift_px:g}",
            "--out", str(out)]
    wall = ptycho_command(args, work_dir / "iterative.log")
    return {**iterative_scores(out, test_ds, truth), "wall_s": wall, "commands": ["ptycho " + " ".join(args)]}


def iterative_scores(out: Path, test_ds: str, truth: str) -> dict[str, Any]:
    """Scores of the files ``ptycho iterative … --out OUT`` wrote (the object, ``<stem>.probe.npz``)."""
    with np.load(truth, allow_pickle=False) as t:
        true = {k: t[k] for k in t.files}
    probe_path = out.with_name(f"{out.stem}.probe.npz")
    probe = np.load(probe_path, allow_pickle=False)["probe"]
    found = refined_positions(out, len(true["test_x_true"]))
    return {"metrics": object_metrics(out, test_ds), "probe": probe_scores(probe, true["probe"]),
            "probe_path": str(probe_path), "positions": scored_positions(found, true, "test", test_ds),
            "figure": str(out.with_name(f"{out.stem}.refinement.png"))}


def input_estimate_metrics(model_dir: Path, dataset: str) -> dict[str, Any]:
    """Arm (c): the global estimate the network reads at ``infer`` (made with the bundle's probe),
    each leave-fold-out object scored over its illuminated region; their mean, and each."""
    from ptycho.io.datasets import load_dataset
    from ptycho.io.objects import ObjectImage, read_object
    from ptycho.iterative.results import support_and_frame
    from ptycho.models.bundle import load_bundle
    from ptycho.models.features import input_estimate
    from ptycho.physics.modes import summed_intensity
    from ptycho.physics.operators.numpy_ops import place
    from ptycho.workflows.infer import use_probe

    model = load_bundle(model_dir).model
    with load_dataset(dataset) as ds:
        use_probe(ds, model, None)
        estimate = input_estimate(model.config, ds)
        M, N = ds.n_patterns, ds.N
        lit = place(np.broadcast_to(summed_intensity(ds.probe), (M, N, N)), estimate.windows, estimate.object.shape)
    support, _ = support_and_frame(lit, 0.05, (0, 0, 0, 0), False)
    truth = read_object(dataset)
    folds = [headline(score(ObjectImage(np.where(support, obj, 0).astype(np.complex64), support,
                                        float(estimate.origin_x), float(estimate.origin_y), {}), truth))
             for obj in estimate.objects]
    mean = {k: float(np.mean([f[k] for f in folds])) if all(f[k] is not None for f in folds) else None for k in folds[0]}
    return {**mean, "folds": folds}


def task_pinn(train_ds: str, test_ds: str, truth: str, work: str, epochs: int, exact_probe: bool,
              refine_positions: bool) -> dict[str, Any]:
    """Arms (b) and (c) — or (d) with ``exact_probe``: ``ptycho train`` on the training scan,
    ``infer`` on the test scan, ``stitch``; scored with the bundle's probe and the stitched
    object's positions. (b) lets ``train`` refine the probe (the dataset marks it a guess); (d)
    gives the true probe to ``train`` and ``infer`` (``--probe``) and refines nothing."""
    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    model, patches, obj = work_dir / "model", work_dir / "patches.h5", work_dir / "object.npz"
    probe_args = ["--probe", truth] if exact_probe else []
    positions_args = ["--refine-positions"] if refine_positions else []
    refine = ["--no-refine-probe"] if exact_probe else ["--refine-probe"]
    commands = [["train", train_ds, "--out", str(model), "--epochs", str(epochs), *refine, *probe_args, *positions_args],
                ["infer", str(model), test_ds, "--out", str(patches), *probe_args, *positions_args],
                ["stitch", str(patches), "--out", str(obj)]]
    walls = [ptycho_command(args, work_dir / "pinn.log") for args in commands]
    with np.load(truth, allow_pickle=False) as t:
        true = {k: t[k] for k in t.files}
    probe = np.load(model / "probe.npy", allow_pickle=False)
    found = refined_positions(obj, len(true["test_x_true"])) if refine_positions else None
    out: dict[str, Any] = {
        "metrics": object_metrics(obj, test_ds), "probe": probe_scores(probe, true["probe"]),
        "probe_path": str(model / "probe.npy"), "positions": scored_positions(found, true, "test", test_ds),
        "wall_s": sum(walls), "train_s": walls[0], "reconstruct_s": walls[1] + walls[2],
        "commands": ["ptycho " + " ".join(a) for a in commands]}
    if not exact_probe:
        out["input_estimate"] = input_estimate_metrics(model, test_ds)
    return out
