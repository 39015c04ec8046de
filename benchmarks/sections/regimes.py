"""Section ``regimes``: where each reconstruction wins — dose × scan overlap × object.

**Cells.** N = ``regimes_N`` (64), the ideal probe (effective diameter ``D`` from its participation
area, ≈ 0.7·N), a square object of ``regimes_object_size`` px. Per cell a *training* and a separate
*test* scan, both rasters with Gaussian jitter of :data:`JITTER_FRACTION` of the step:

* overlap ``dense`` (step 0.25 D), ``sparse`` (0.7 D), ``free`` (1.1 D: with the jitter, neighbours
  stay about D apart, so windows barely touch);
* the test raster has a border of half a step, which re-centres it about half a step off the
  training raster (one row and column fewer) and draws its own jitter (``scan.seed = 1``);
* objects ``lines``, ``siemens`` and ``gold`` (``file:`` the gold-balls specimen in
  ``../shared/data/gold_balls_reconstruction.npz``, its specimen region filling the object);
* doses ``regimes_doses`` photons per pattern, Poisson noise.

**Arms** (:mod:`benchmarks.sections.regimes_arms`): rPIE at its best iteration (an oracle) and at a
fixed budget of ``regimes_budget`` iterations, the ML engine at its best, pty-chi's LSQML-Poisson at
its best when it imports, and the PINN (``pinn_arm``). Columns: phase / amplitude SSIM, FRC-0.5,
absolute amplitude-mean ratio, wall time (iterative: set-up included, to that iteration; PINN: infer
+ stitch, training apart). Iterative results are scored over the bounding box of their illuminated
pixels (``regimes_arms.scan_box_image``): an overlap-free scan's illumination has holes. A figure of phase SSIM per arm is written beside the results.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.child import REPO, ChildError
from benchmarks.context import Context, sim_config
from benchmarks.costs import stages_note
from benchmarks.matmul import fraction
from benchmarks.report import NA, Section, Target, row

STEP_FRACTION = {"dense": 0.25, "sparse": 0.7, "free": 1.1}
"""Raster step / probe diameter D per overlap regime."""
JITTER_FRACTION = 0.05
"""Gaussian jitter (σ per coordinate) / step."""
GOLD = REPO.parent / "shared" / "data" / "gold_balls_reconstruction.npz"
OBJECTS = {"lines": {"kind": "lines"}, "siemens": {"kind": "siemens"}, "gold": {"kind": f"file:{GOLD}"}}
ARMS = ("rPIE best", "rPIE budget", "ML best", "pty-chi best", "PINN")
LOW_DOSE_TARGET = (1e4, "dense", "lines")
PINN_PHASE_SSIM = 0.86
MARGIN_OVER_PTYCHI = 0.05
AMPLITUDE_MEAN_TOL = 0.05
FREE_TARGET = (1e9, "free")
PINN_FREE_AMPLITUDE_SSIM = 0.90


def dose_label(dose: float) -> str:
    exp = round(math.log10(dose))
    return f"1e{exp}" if float(f"1e{exp}") == dose else f"{dose:g}"


def probe_diameter_px(N: int) -> float:
    """Effective diameter of the default (ideal) probe at pattern size ``N``."""
    from ptycho.config.physics import ProbeConfig
    from ptycho.physics.probe import effective_diameter_px, ideal_probe

    return effective_diameter_px(ideal_probe(N, ProbeConfig()))


def cell_configs(N: int, size: int, dose: float, overlap: str, obj: str, D: float) -> tuple[dict, dict]:
    """``SimulateConfig`` data of a cell's training and test scans."""
    step = STEP_FRACTION[overlap] * D
    scan = {"kind": "grid", "n_images": 10**7, "step_px": step, "jitter_px": JITTER_FRACTION * step}
    base = {"nphotons": dose, "object": {"size": size, **OBJECTS[obj]}}
    train = sim_config(N, 10**7, **base, scan=scan)
    test = sim_config(N, 10**7, **base, scan={**scan, "seed": 1, "border_px": step / 2})
    return train, test


def summarise(arm: dict[str, Any], budget: int | None = None) -> dict[str, Any] | None:
    """The best-phase-SSIM iteration of a trajectory (or iteration ``budget``), with its wall time."""
    trajectory = [e for e in arm.get("trajectory", []) if e.get("phase_ssim") is not None]
    if not trajectory:
        return None
    if budget is not None:
        pick = next((e for e in trajectory if e["iteration"] == budget), trajectory[-1])
    else:
        pick = max(trajectory, key=lambda e: e["phase_ssim"])
    out = {**pick, "wall_s": (arm.get("setup_s") or 0.0) + pick["seconds"], "setup_s": arm.get("setup_s") or 0.0,
           "last_phase_ssim": trajectory[-1]["phase_ssim"]}
    flops = (arm.get("flops_per_iteration") or {}).get("total")
    if flops and pick["seconds"] > 0:  # iterations only: the FLOPs counted are the iterations'
        out["achieved_flops"] = flops * pick["iteration"] / pick["seconds"]
    return out


def arm_results(iterative: dict[str, Any], pinn: dict[str, Any], budget: int) -> dict[str, dict[str, Any] | str]:
    """Per arm: the summary dict, or a string saying why there is none."""
    def pick(name: str, b: int | None = None) -> dict[str, Any] | str:
        arm = iterative.get(name, {})
        if "skipped" in arm:
            return arm["skipped"]
        found = summarise(arm, b)
        return found if found is not None else arm.get("error", "no scored iteration")

    out: dict[str, dict[str, Any] | str] = {"rPIE best": pick("rpie"), "rPIE budget": pick("rpie", budget),
                                            "ML best": pick("ml"), "pty-chi best": pick("ptychi")}
    if "error" in pinn:
        out["PINN"] = pinn["error"]
        return out
    out["PINN"] = {**pinn["metrics"], "wall_s": pinn["reconstruct_s"], "train_s": pinn["train_s"],
                   "stages": {**pinn.get("infer_stages", {}),
                              **({"stitch": pinn["stitch_s"]} if "stitch_s" in pinn else {})}}
    network = ((pinn.get("flops") or {}).get("infer") or {}).get("total")
    if network and pinn.get("network_patterns_per_second"):
        out["PINN"]["achieved_flops"] = network * pinn["network_patterns_per_second"]
    return out


def _efficiency(r: dict[str, Any], rates: dict[str, Any]) -> str:
    """``network X GFLOP/s = Y % of TensorFlow's matmul`` (PINN) or ``iterations X GFLOP/s = Y % of
    NumPy's matmul`` (iterative), or "" when not counted."""
    if not r.get("achieved_flops"):
        return ""
    pinn = "stages" in r
    library, name = ("tensorflow", "TensorFlow") if pinn else ("numpy", "NumPy")
    part = fraction(r["achieved_flops"], rates.get(library))
    share = f" = {part:.1%} of {name}'s matmul" if part is not None else ""
    return f"{'network' if pinn else 'iterations'} {r['achieved_flops'] / 1e9:.3g} GFLOP/s{share}"


def _wall(r: dict[str, Any]) -> str:
    if "stages" in r:  # the PINN: each part of infer + stitch
        return f"{r['wall_s']:.1f} s = {stages_note(r['stages'], r['stages'].get('stitch'))}"
    return f"{r['wall_s']:.1f} s = set-up {r.get('setup_s', 0.0):.2f} s + iterations {r['seconds']:.2f} s"


def _note(r: dict[str, Any], rates: dict[str, Any] | None = None) -> str:
    bits = [f"amp SSIM {r['amplitude_ssim']:.3f}"]
    frc = r.get("frc50_cycles_per_px")
    bits.append(f"FRC-0.5 {frc:.3f} c/px" if frc is not None else "FRC ≥ 0.5 to Nyquist")
    bits.append(f"amp mean ratio {r['amplitude_mean_ratio']:.3f}")
    if "iteration" in r:
        bits.append(f"iteration {r['iteration']}, last {r['last_phase_ssim']:.3f}")
    bits.append(_wall(r) + (f" (+ training {r['train_s']:.0f} s)" if "train_s" in r else ""))
    efficiency = _efficiency(r, rates or {})
    return "; ".join(bits + ([efficiency] if efficiency else []))


def cell_rows(sec: Section, label: str, arms: dict[str, Any], rates: dict[str, Any] | None = None) -> list[str]:
    """One row per arm (phase SSIM, the rest in the note; ``rates`` is ``Context.rates()``);
    returns the grid cells."""
    cells = []
    for name in ARMS:
        r = arms[name]
        if isinstance(r, str):
            sec.add(row(f"{name} phase SSIM", None, config=label, status=NA, note=r[:300]))
            cells.append("—")
            continue
        sec.add(row(f"{name} phase SSIM", r["phase_ssim"], config=label, note=_note(r, rates)))
        cells.append(f"{r['phase_ssim']:.3f} / {r['amplitude_ssim']:.3f}")
    return cells


def target_rows(sec: Section, label: str, arms: dict[str, Any], cell: tuple[float, str, str]) -> None:
    pinn = arms["PINN"]
    if isinstance(pinn, str):
        return
    dose, overlap, obj = cell
    if cell == LOW_DOSE_TARGET:
        sec.add(row("PINN phase SSIM, low-dose target", pinn["phase_ssim"], config=label, target=Target(">=", PINN_PHASE_SSIM)),
                row("PINN amplitude mean ratio", pinn["amplitude_mean_ratio"], config=label,
                    target=Target("within", 1.0, tol=AMPLITUDE_MEAN_TOL, relative=True, label="1 ± 5 %")))
        for other, margin in (("pty-chi best", MARGIN_OVER_PTYCHI), ("ML best", 0.0)):
            if not isinstance(arms[other], str):
                need = arms[other]["phase_ssim"] + margin
                target = Target(">=", 0.0) if margin else Target(">=", 1e-9, label="> 0")
                sec.add(row(f"PINN phase SSIM − ({other} + {margin:g})", pinn["phase_ssim"] - need, config=label,
                            target=target))
    if (dose, overlap) == FREE_TARGET:
        sec.add(row("PINN amplitude SSIM, overlap-free target", pinn["amplitude_ssim"], config=label,
                    target=Target(">=", PINN_FREE_AMPLITUDE_SSIM), note="ideal probe (the issue's target names the aberrated one)"))


def figure(path: Path, results: dict[tuple[float, str, str], dict[str, Any]], doses, overlaps, objects) -> Path:
    """Phase SSIM heat maps: one row of panels per object, one column per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(objects), len(ARMS), figsize=(2.6 * len(ARMS), 2.2 * len(objects) + 0.6), squeeze=False)
    for i, obj in enumerate(objects):
        for j, arm in enumerate(ARMS):
            grid = np.full((len(overlaps), len(doses)), np.nan)
            for a, overlap in enumerate(overlaps):
                for b, dose in enumerate(doses):
                    r = results.get((dose, overlap, obj), {}).get(arm)
                    if isinstance(r, dict):
                        grid[a, b] = r["phase_ssim"]
            ax = axes[i, j]
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (a, b), v in np.ndenumerate(grid):
                ax.text(b, a, "—" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if not np.isnan(v) and v < 0.6 else "black")
            ax.set_xticks(range(len(doses)), [dose_label(d) for d in doses], fontsize=7)
            ax.set_yticks(range(len(overlaps)), overlaps, fontsize=7)
            ax.set_title(f"{obj}: {arm}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="phase SSIM")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(ctx: Context) -> Section:
    s = ctx.sizes
    N, size = s.regimes_N, s.regimes_object_size
    D = probe_diameter_px(N)
    sec = Section("regimes", f"regime map: N={N}, {size}² objects, jittered rasters (dense/sparse/free = "
                             f"{'/'.join(f'{STEP_FRACTION[o]:g}' for o in s.regimes_overlaps)} D, D = {D:.1f} px), "
                             f"{s.regimes_iterations} iterations, rPIE budget {s.regimes_budget}")
    objects = [o for o in s.regimes_objects if o != "gold" or GOLD.is_file()]
    if len(objects) < len(s.regimes_objects):
        sec.notes.append(f"gold: {GOLD} not found; its cells are left out")
    cells = [(d, o, obj) for obj in objects for o in s.regimes_overlaps for d in s.regimes_doses]
    wanted = []
    for dose, overlap, obj in cells:
        train, test = cell_configs(N, size, dose, overlap, obj, D)
        name = f"regimes-{obj}-{overlap}-{dose_label(dose)}"
        wanted += [(train, f"{name}-train"), (test, f"{name}-test")]
    paths = ctx.datasets_for(wanted)
    results: dict[tuple[float, str, str], dict[str, Any]] = {}
    grid_rows: dict[str, list[str]] = {}
    for k, cell in enumerate(cells):
        dose, overlap, obj = cell
        label = f"{obj}, {overlap}, {dose_label(dose)}"
        train_ds, test_ds = str(paths[2 * k]), str(paths[2 * k + 1])
        work = ctx.work / f"regimes-{obj}-{overlap}-{dose_label(dose)}"
        try:
            iterative = ctx.child("regimes_arms", "iterative", test_ds=test_ds, iterations=s.regimes_iterations,
                                  ptychi_epochs=s.regimes_ptychi_epochs)
        except ChildError as exc:
            sec.error(f"iterative arms, {label}", exc)
            iterative = {}
        try:
            pinn = ctx.child("regimes_arms", "pinn", train_ds=train_ds, test_ds=test_ds, epochs=s.regimes_pinn_epochs,
                             work=str(work)) if s.regimes_pinn_epochs > 0 else {"error": "off (regimes_pinn_epochs = 0)"}
        except ChildError as exc:
            sec.error(f"PINN, {label}", exc)
            pinn = {"error": str(exc).splitlines()[-1][:300]}
        arms = arm_results(iterative, pinn, s.regimes_budget)
        results[cell] = arms
        grid_rows[label] = cell_rows(sec, label, arms, ctx.rates())
        target_rows(sec, label, arms, cell)
        sec.raw[label] = {"iterative": iterative, "pinn": pinn}
    sec.grid = {"title": "phase SSIM / amplitude SSIM per cell and arm", "columns": list(ARMS), "rows": grid_rows}
    if ctx.out is not None and results:
        path = figure(ctx.out / f"{ctx.stem}-regimes.png", results, s.regimes_doses, s.regimes_overlaps, objects)
        sec.notes.append(f"figure: {path.name}")
    sec.notes.append("best = the iteration with the highest phase SSIM against the truth (an oracle); wall time = "
                     "set-up (dataset read, data preparation, engine set-up) + iterations to it (scoring excluded); "
                     "PINN wall time = infer (bundle load, grouping, pre-pass, network, reading/writing) + stitch, "
                     "training apart; FLOP rates count the iterations' or the network's FLOPs (benchmarks/flops*.py)")
    sec.raw["matmul"] = ctx.matmul
    if ctx.quick:
        sec.notes.append("quick mode: tiny sizes — the numbers only show that every arm runs")
    return sec
