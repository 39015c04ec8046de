"""Section ``quality``: the standard scenario — PINN vs the iterative baseline.

Per dose: a training scan and a separate test scan of the *same* object (``scan.seed = 1``).
Per gridsize, the PINN is trained (``train``), reconstructs the test scan (``infer`` → ``stitch``,
timed together) and is scored (``evaluate``: registration, phase offset removed, absolute
amplitude); one process per dose runs the gridsizes in turn. Per dose, another process runs rPIE (``ptycho_iterative``) on the same test
scan, scoring every iteration through its callback (scoring time is excluded from its clock), so
one run gives both its final metrics and the time it needs to reach the PINN's phase SSIM.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError, import_tensorflow
from benchmarks.context import Context, sim_config
from benchmarks.costs import efficiency_rows, stages_note
from benchmarks.report import NA, PASS, Section, Target, row
from benchmarks.scoring import TrajectoryRecorder, headline
from benchmarks.sections.common import model_flops

PHASE_SSIM = 0.9
AMPLITUDE_SSIM_SPEC = 0.9
AMPLITUDE_SSIM_ISSUE = 0.8
AMPLITUDE_MEAN_TOL = 0.05
SPEED_RATIO = 20.0
FINAL_CHECK_ATOL = 1e-6
"""In-memory scoring of the final iterate vs ``evaluate`` of its file (same code path; float noise)."""


def _nonfinite(array: Any) -> int:
    import numpy as np

    return int(np.size(array) - np.count_nonzero(np.isfinite(array)))


def task_pinn(train_ds: str, test_ds: str, gridsize: int, epochs: int, n_filters: int, work: str) -> dict[str, Any]:
    """Train → infer → stitch → evaluate; times, metrics and NaN flags."""
    import_tensorflow()
    import h5py

    from ptycho.config.evaluate import EvaluateConfig
    from ptycho.config.infer import InferConfig
    from ptycho.config.stitch import StitchConfig
    from ptycho.config.train import TrainConfig
    from ptycho.errors import PtychoError
    from ptycho.io.objects import read_object
    from ptycho.models.bundle import all_finite, load_bundle
    from ptycho.workflows.evaluate import evaluate
    from ptycho.workflows.infer import infer
    from ptycho.workflows.stitch import stitch
    from ptycho.workflows.train import train

    work_dir = Path(work)
    out: dict[str, Any] = {"gridsize": gridsize}
    config = TrainConfig(epochs=epochs, model={"gridsize": gridsize, "n_filters_scale": n_filters})
    t0 = time.perf_counter()
    try:
        tr = train(config, Path(train_ds), work_dir / "model")
    except PtychoError as exc:  # diverged beyond recovery: report, do not crash the section
        out.update(train_error=str(exc), train_wall_s=time.perf_counter() - t0)
        return out
    out["train_wall_s"] = time.perf_counter() - t0
    seconds = tr.history["seconds"]
    out.update(
        epochs=tr.epochs, loss=tr.history["loss"], val_loss=tr.history["val_loss"], epoch_seconds=seconds,
        nan_recoveries=tr.nan_recoveries, stopped_early=tr.stopped_early, patterns_per_epoch=tr.patterns_per_epoch,
        train_patterns_per_second=tr.patterns_per_second,  # epochs after the first (XLA compilation)
        weights_finite=all_finite(load_bundle(work_dir / "model").model),
    )
    t0 = time.perf_counter()
    inf = infer(InferConfig(), work_dir / "model", Path(test_ds), work_dir / "patches.h5")
    t1 = time.perf_counter()
    st = stitch(StitchConfig(), work_dir / "patches.h5", work_dir / "object.npz", figures=False)
    t2 = time.perf_counter()
    out.update(infer_wall_s=t1 - t0, stitch_wall_s=t2 - t1, reconstruct_wall_s=t2 - t0, infer_stages=inf.stage_seconds,
               network_s=inf.inference_seconds, test_patterns=inf.n_patterns, test_groups=inf.n_groups,
               infer_network_patterns_per_second=inf.patterns_per_second, stitch_coverage=st.coverage)
    # the same reconstruction without XLA: shows how much of the time above is compilation
    t0 = time.perf_counter()
    infer(InferConfig(jit=False), work_dir / "model", Path(test_ds), work_dir / "patches-nojit.h5")
    stitch(StitchConfig(), work_dir / "patches-nojit.h5", work_dir / "object-nojit.npz", figures=False)
    out["reconstruct_nojit_wall_s"] = time.perf_counter() - t0
    with h5py.File(work_dir / "patches.h5", "r") as f:
        out["nonfinite_patches"] = _nonfinite(f["patches"][...])
    out["nonfinite_object"] = _nonfinite(read_object(work_dir / "object.npz").object)
    ev = evaluate(EvaluateConfig(), work_dir / "object.npz", Path(test_ds), work_dir / "eval")
    out["metrics"] = headline(ev.metrics)
    out["metrics_path"] = str(ev.metrics_path)
    out["nonfinite_loss"] = sum(1 for v in tr.history["loss"] if v is None or not math.isfinite(v))
    out["estimate_passes"], out["estimate_passes_run"] = list(inf.estimate_passes), list(inf.estimate_passes_run)
    out["flops"] = model_flops(work_dir / "model", test_ds, inf.estimate_passes_run or None)
    return out


def task_pinns(gridsizes: list[int], work: str, **kwargs: Any) -> dict[str, Any]:
    """:func:`task_pinn` for each gridsize in this one process; a crash of one is recorded as its
    ``error`` and the others still run."""
    results = {}
    for gs in gridsizes:
        try:
            results[str(gs)] = task_pinn(gridsize=gs, work=str(Path(work) / f"gs{gs}"), **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported as an error row by the parent
            results[str(gs)] = {"gridsize": gs, "error": f"{type(exc).__name__}: {exc}"}
    return {"results": results}


def task_iterative(test_ds: str, iterations: int, work: str) -> dict[str, Any]:
    """rPIE on the test scan, every iteration scored; the final state also through ``evaluate``.
    Its clock starts before the dataset is read (``setup_s``: reading, data preparation, the
    engine's set-up); scoring is excluded."""
    import scipy.fft  # noqa: F401 - imported before the clock, as the engines import it on their first FFT

    from benchmarks.flops_iterative import engine_iteration_flops
    from ptycho.config.evaluate import EvaluateConfig
    from ptycho.config.iterative import IterativeConfig
    from ptycho.io.datasets import load_dataset
    from ptycho.io.objects import read_object, write_object
    from ptycho.workflows.evaluate import evaluate
    from ptycho_iterative.workflow import reconstruct

    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    truth = read_object(test_ds)
    config = IterativeConfig(engine="rpie", iterations=iterations)
    record = TrajectoryRecorder(truth)

    def on_iteration(state: Any) -> None:
        record.add(state.iteration, state.seconds, state.result().object_image(), error=state.error)

    with load_dataset(test_ds) as ds:
        result = reconstruct(ds, config=config, callback=on_iteration)
        flops, n_patterns = engine_iteration_flops(ds, config), ds.n_patterns  # after the clocks
    write_object(work_dir / "rpie.npz", result.object_image({"created_by": "benchmarks (rPIE)"}))
    ev = evaluate(EvaluateConfig(), work_dir / "rpie.npz", Path(test_ds), work_dir / "eval")
    final = headline(ev.metrics)
    trajectory = record.trajectory
    last = trajectory[-1] if trajectory else {}
    mismatch = max((abs((final[k] or 0.0) - (last.get(k) or 0.0)) for k in final), default=0.0)
    return {"iterations": iterations, "seconds": result.seconds, "seconds_per_iteration": result.seconds_per_iteration,
            "setup_s": record.setup_s or 0.0, "flops_per_iteration": flops.as_dict(), "n_patterns": n_patterns,
            "final": final, "trajectory": trajectory, "final_scoring_mismatch": mismatch,
            "nonfinite_object": _nonfinite(result.object), "metrics_path": str(ev.metrics_path)}


def time_to_reach(trajectory: list[dict[str, Any]], phase_ssim: float) -> dict[str, Any] | None:
    """The first iterate whose phase SSIM is at least ``phase_ssim`` (None if none is)."""
    for entry in trajectory:
        value = entry.get("phase_ssim")
        if value is not None and value >= phase_ssim:
            return entry
    return None


def _dose(d: float) -> str:
    return f"1e{round(math.log10(d))}" if d > 0 and float(f"1e{round(math.log10(d))}") == d else f"{d:g}"


def _frc_note(metrics: dict[str, Any]) -> str:
    if metrics["frc50_cycles_per_px"] is None:
        return "never crossed: FRC ≥ 0.5 up to Nyquist (0.5 cycles/px), the best possible"
    return ""


def _pinn_rows(sec: Section, r: dict[str, Any], label: str, rates: dict[str, Any]) -> None:
    """The PINN's rows of one dose and gridsize; ``rates`` is ``Context.rates()``."""
    if "train_error" in r:
        sec.add(row("PINN training", None, config=label, status="FAIL", note=r["train_error"][:300]))
        return
    m = r["metrics"]
    sec.add(
        row("PINN phase SSIM", m["phase_ssim"], config=label, target=Target(">=", PHASE_SSIM)),
        row("PINN amplitude SSIM (SPEC)", m["amplitude_ssim"], config=label, target=Target(">=", AMPLITUDE_SSIM_SPEC)),
        row("PINN amplitude SSIM (issue)", m["amplitude_ssim"], config=label, target=Target(">=", AMPLITUDE_SSIM_ISSUE)),
        row("PINN amplitude mean ratio (absolute, no rescale)", m["amplitude_mean_ratio"], config=label,
            target=Target("within", 1.0, tol=AMPLITUDE_MEAN_TOL, relative=True, label="1 ± 5 %")),
        row("PINN phase PSNR", m["phase_psnr"], unit="dB", config=label),
        row("PINN amplitude PSNR", m["amplitude_psnr"], unit="dB", config=label),
        row("PINN phase MAE", m["phase_mae"], unit="rad", config=label),
        row("PINN amplitude MAE", m["amplitude_mae"], config=label),
        row("PINN FRC-0.5", m["frc50_cycles_per_px"], unit="cycles/px", config=label, note=_frc_note(m)),
        row("PINN non-finite values (loss, patches, object)",
            r["nonfinite_loss"] + r["nonfinite_patches"] + r["nonfinite_object"], config=label,
            target=Target("<=", 0, label="0"),
            note=f"NaN recoveries {r['nan_recoveries']}; weights finite: {r['weights_finite']}"),
        row("PINN training throughput (train(), epochs 2…)", r["train_patterns_per_second"],
            unit="patterns/s", config=label,
            note=f"{r['epochs']} epochs in {r['train_wall_s']:.0f} s, loss {r['loss'][0]:.4g} → {r['loss'][-1]:.4g}"
                 + (" (stopped early)" if r["stopped_early"] else "")),
        row("PINN reconstruction time (infer + stitch)", r["reconstruct_wall_s"], unit="s", config=label,
            note=f"{r['test_patterns']} test patterns: {stages_note(r['infer_stages'], r['stitch_wall_s'])}"),
        row("PINN reconstruction time, infer jit=False", r["reconstruct_nojit_wall_s"], unit="s", config=label,
            note="same bundle and test scan without XLA (no compilation)"),
    )
    sec.add(*efficiency_rows("PINN network", label, r["flops"]["infer"], r["infer_network_patterns_per_second"],
                             rates.get("tensorflow")))  # steady state, as in the infer section
    prepass = r["flops"]["prepass"]
    if prepass["total"]:
        sec.add(*efficiency_rows("PINN pre-pass (global rPIE estimate)", label, prepass,
                                 prepass["n_patterns"] / max(r["infer_stages"]["estimate"], 1e-9), rates.get("numpy"),
                                 library="NumPy"))


def _rpie_rows(sec: Section, it: dict[str, Any], d: str, rates: dict[str, Any]) -> None:
    label = f"rPIE, {it['iterations']} it., {d} photons"
    f = it["final"]
    sec.add(
        row("rPIE phase SSIM", f["phase_ssim"], config=label),
        row("rPIE amplitude SSIM", f["amplitude_ssim"], config=label),
        row("rPIE amplitude mean ratio", f["amplitude_mean_ratio"], config=label),
        row("rPIE phase PSNR", f["phase_psnr"], unit="dB", config=label),
        row("rPIE amplitude PSNR", f["amplitude_psnr"], unit="dB", config=label),
        row("rPIE phase MAE", f["phase_mae"], unit="rad", config=label),
        row("rPIE amplitude MAE", f["amplitude_mae"], config=label),
        row("rPIE FRC-0.5", f["frc50_cycles_per_px"], unit="cycles/px", config=label, note=_frc_note(f)),
        row("rPIE time", it["setup_s"] + it["seconds"], unit="s", config=label,
            note=f"set-up (dataset read, data preparation, engine set-up) {it['setup_s']:.2f} s + iterations "
                 f"{it['seconds']:.2f} s ({it['seconds_per_iteration']:.3f} s/iteration); non-finite pixels "
                 f"{it['nonfinite_object']}"),
    )
    per_pattern = {k: v / it["n_patterns"] for k, v in it["flops_per_iteration"].items()}
    sec.add(*efficiency_rows("rPIE iterations", label, per_pattern, it["n_patterns"] / it["seconds_per_iteration"],
                             rates.get("numpy"), unit_name="pattern-iteration", library="NumPy"))


def _speed_rows(sec: Section, gs: int, r: dict[str, Any], it: dict[str, Any], d: str) -> None:
    """rPIE's time (set-up included) to the PINN's phase SSIM, and its ratio to the PINN's infer + stitch."""
    target_ssim, pinn_s = r["metrics"]["phase_ssim"], r["reconstruct_wall_s"]
    hit = time_to_reach(it["trajectory"], target_ssim)
    label = f"gs{gs}, {d} photons"
    if hit is None:
        whole = it["setup_s"] + it["seconds"]
        bound = whole / pinn_s
        sec.add(row("rPIE time to PINN's phase SSIM", None, unit="s", config=label,
                    status=NA, note=f"rPIE never reached {target_ssim:.3f} in {it['iterations']} iterations "
                                       f"({whole:.1f} s with set-up)"),
                row("speed ratio: rPIE time-to-equal-phase-SSIM / PINN infer+stitch", bound, unit="×",
                    config=label, target=f"≥ {SPEED_RATIO:g}", status=PASS if bound >= SPEED_RATIO else NA,
                    note="lower bound: rPIE's whole run / PINN time (rPIE never reached the PINN's SSIM)"))
        return
    rpie_s = it["setup_s"] + hit["seconds"]
    sec.add(row("rPIE time to PINN's phase SSIM", rpie_s, unit="s", config=label,
                note=f"set-up {it['setup_s']:.2f} s + {hit['iteration']} iterations {hit['seconds']:.2f} s; "
                     f"iteration {hit['iteration']} reaches {hit['phase_ssim']:.3f} ≥ {target_ssim:.3f}"),
            row("speed ratio: rPIE time-to-equal-phase-SSIM / PINN infer+stitch", rpie_s / pinn_s,
                unit="×", config=label, target=Target(">=", SPEED_RATIO),
                note=f"PINN {pinn_s:.2f} s wall ({stages_note(r['infer_stages'], r['stitch_wall_s'])}); with infer "
                     f"jit=False {rpie_s / r['reconstruct_nojit_wall_s']:.3g}×; network time alone "
                     f"{r['network_s']:.2f} s → {rpie_s / max(r['network_s'], 1e-9):.3g}×"))


def run(ctx: Context) -> Section:
    s = ctx.sizes
    sec = Section("quality", f"standard scenario: lines, N={s.quality_N}, random scan, "
                             f"{s.quality_train_positions} training / {s.quality_test_positions} test positions, "
                             f"{s.quality_epochs} epochs, rPIE {s.iterative_iterations} iterations")
    extra = {"object": {"size": s.quality_object_size}} if s.quality_object_size else {}
    wanted = []
    for dose in s.quality_doses:
        d = _dose(dose)
        wanted += [(sim_config(s.quality_N, s.quality_train_positions, nphotons=dose, **extra), f"quality-train-{d}"),
                   (sim_config(s.quality_N, s.quality_test_positions, nphotons=dose, scan={"seed": 1}, **extra),
                    f"quality-test-{d}")]
    paths = ctx.datasets_for(wanted)
    for i, dose in enumerate(s.quality_doses):
        d = _dose(dose)
        train_ds, test_ds = paths[2 * i], paths[2 * i + 1]
        pinn: dict[int, dict[str, Any]] = {}
        try:
            results = ctx.child("quality", "pinns", gridsizes=list(s.quality_gridsizes), train_ds=str(train_ds),
                                test_ds=str(test_ds), epochs=s.quality_epochs, n_filters=s.quality_filters,
                                work=str(ctx.work / f"quality-{d}"))["results"]
        except ChildError as exc:
            sec.error(f"PINN {d} photons", exc)
            results = {}
        for gs_text, r in results.items():
            gs, label = int(gs_text), f"gs{gs_text}, {d} photons"
            if "error" in r:
                sec.error(f"PINN {label}", r["error"])
                continue
            pinn[gs] = r
            _pinn_rows(sec, r, label, ctx.rates())
        sec.raw[f"pinn_{d}"] = {f"gs{k}": v for k, v in pinn.items()}
        try:
            it = ctx.child("quality", "iterative", test_ds=str(test_ds), iterations=s.iterative_iterations,
                           work=str(ctx.work / f"quality-{d}-rpie"))
        except ChildError as exc:
            sec.error(f"rPIE {d} photons", exc)
            continue
        sec.raw[f"rpie_{d}"] = it
        _rpie_rows(sec, it, d, ctx.rates())
        if it["final_scoring_mismatch"] > FINAL_CHECK_ATOL:
            sec.notes.append(f"{d}: in-memory scoring of the last rPIE iterate differs from evaluate() by "
                             f"{it['final_scoring_mismatch']:.2g}")
        for gs, r in pinn.items():
            if "train_error" not in r and r["metrics"]["phase_ssim"] is not None:
                _speed_rows(sec, gs, r, it, d)
    sec.notes.append("PINN reconstruction time = infer() + stitch() wall time, each part reported: bundle load, "
                     "grouping, the global-estimate pre-pass, the network (the first batch's XLA compilation "
                     "included), reading/writing, stitch (figures off); rPIE time = set-up (dataset read, data "
                     "preparation, engine set-up) + iterations up to the quality reached, scoring excluded. The PINN's "
                     "clock starts after TensorFlow's import.")
    sec.raw["matmul"] = ctx.matmul
    if ctx.quick:
        sec.notes.append("quick mode: N=32, ~256 patterns, 2 epochs — quality numbers are meaningless here")
    return sec
