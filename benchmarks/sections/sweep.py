"""Section ``sweep``: robustness — no NaN and a falling loss across doses and probe options.

Each case simulates a small dataset (N=32, ~128 random positions) with the given photon count and
probe kind, and trains the default PINN through ``train`` (NaN guard included) for a few epochs
with the given ``model.probe_trainable`` / ``model.scale_trainable``. A case passes when training
finishes, every epoch loss is finite, the NaN guard never had to recover, every weight is finite,
and the last epoch's loss is below the first's. One process runs all cases in turn.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError, import_tensorflow
from benchmarks.context import Context, sim_config
from benchmarks.report import FAIL, PASS, Section, row

Case = tuple[int, float, str, bool, bool]


def case_name(dose: float, probe: str, probe_trainable: bool, scale_trainable: bool) -> str:
    exp = math.log10(dose)
    d = f"1e{exp:.0f}" if exp.is_integer() else f"{dose:g}"
    options = "".join([" +probe_trainable" if probe_trainable else "", " +scale_trainable" if scale_trainable else ""])
    return f"{d} photons, {probe}{options}"


def task_cases(cases: list[list[Any]], N: int, positions: int, epochs: int, jit: bool, work: str) -> dict[str, Any]:
    import_tensorflow()
    from ptycho.config.simulate import SimulateConfig
    from ptycho.config.train import TrainConfig
    from ptycho.models.bundle import all_finite, load_bundle
    from ptycho.workflows.simulate import simulate
    from ptycho.workflows.train import train

    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for gs, dose, probe, probe_trainable, scale_trainable in cases:
        name = case_name(dose, probe, probe_trainable, scale_trainable)
        entry: dict[str, Any] = {"gridsize": gs, "photons": dose, "probe": probe, "probe_trainable": probe_trainable,
                                 "scale_trainable": scale_trainable, "name": name}
        t0 = time.perf_counter()
        data = work_dir / f"data-N{N}-{positions}-{dose:g}-{probe}.h5"
        try:
            if not data.is_file():
                simulate(SimulateConfig.model_validate(sim_config(N, positions, nphotons=dose, probe={"kind": probe})),
                         data, preview=False)
            out = work_dir / f"model-gs{gs}-{len(results)}"
            config = TrainConfig(epochs=epochs, jit=jit, model={"gridsize": gs, "probe_trainable": probe_trainable,
                                                               "scale_trainable": scale_trainable})
            result = train(config, data, out)
            loss = result.history["loss"]
            model = load_bundle(out).model
            entry.update(loss=loss, nan_recoveries=result.nan_recoveries, epochs=result.epochs,
                         weights_finite=all_finite(model), scale=float(model.scale.numpy()))
        except Exception as exc:  # noqa: BLE001 - NumericalError (diverged) or a crash: this case fails
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["seconds"] = time.perf_counter() - t0
        results.append(entry)
    return {"cases": results}


def verdict(entry: dict[str, Any]) -> tuple[str, str, float | None]:
    """``(status, short cell text, last/first loss)`` of one case."""
    if "error" in entry:
        return FAIL, "FAIL: " + entry["error"].split(":")[0], None
    loss = entry["loss"]
    finite = all(v is not None and math.isfinite(v) for v in loss)
    ratio = loss[-1] / loss[0] if finite and loss and loss[0] != 0 else None
    problems = []
    if not finite:
        problems.append("non-finite loss")
    if entry["nan_recoveries"]:
        problems.append(f"{entry['nan_recoveries']} NaN recoveries")
    if not entry["weights_finite"]:
        problems.append("non-finite weights")
    if finite and len(loss) >= 2 and not loss[-1] < loss[0]:
        problems.append("loss did not fall")
    if len(loss) < 2:
        problems.append("fewer than 2 epochs")
    if problems:
        return FAIL, "FAIL: " + ", ".join(problems), ratio
    return PASS, f"pass ({loss[0]:.3g} → {loss[-1]:.3g})", ratio


def run(ctx: Context) -> Section:
    s = ctx.sizes
    sec = Section("sweep", f"robustness: doses × probe options × gridsize (N={s.sweep_N}, {s.sweep_positions} positions, "
                           f"{s.sweep_epochs} epochs, jit={s.sweep_jit})")
    gridsizes = sorted({c[0] for c in s.sweep_cases})
    try:
        entries = ctx.child("sweep", "cases", cases=[list(c) for c in s.sweep_cases], N=s.sweep_N,
                            positions=s.sweep_positions, epochs=s.sweep_epochs, jit=s.sweep_jit,
                            work=str(ctx.work / "sweep"))["cases"]
    except ChildError as exc:
        sec.error("sweep", exc)
        entries = []
    grid: dict[str, list[str]] = {}
    columns = [f"gridsize {gs}" for gs in gridsizes]
    for e in entries:
        status, cell, ratio = verdict(e)
        note = cell if status == FAIL else f"NaN recoveries {e.get('nan_recoveries', 0)}; {e['seconds']:.0f} s"
        sec.add(row("loss last / first epoch", ratio, unit="×", config=f"gs{e['gridsize']}, {e['name']}",
                    target="finite, no NaN, < 1", status=status, note=note))
        grid.setdefault(e["name"], ["—"] * len(gridsizes))[gridsizes.index(e["gridsize"])] = cell
    sec.grid = {"title": "pass/fail grid (loss first → last epoch)", "columns": columns, "rows": grid}
    sec.raw["cases"] = entries
    sec.notes.append("one factor at a time around the default (ideal probe, nothing trainable): every dose with the "
                     "default probe; each probe option, and all together, at both dose extremes")
    if not s.sweep_jit:
        sec.notes.append("quick mode: XLA off (jit=False) to skip compile time, and a reduced set of cases")
    return sec
