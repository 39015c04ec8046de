"""Section ``infer``: inference throughput and peak memory of ``infer`` from 10⁴ to 10⁵ patterns.

The datasets are the sim section's files; the model is an untrained default PINN saved as a bundle
(speed and memory do not depend on the weights). Each run is a fresh process; TensorFlow's import
is excluded from the times, not from the memory. At gridsize 2, ``n_groups = M/4`` so that as many
patterns pass through the network as the file holds (the default, one group per position, would
push each pattern through four times).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.child import ChildError, current_rss_mb, import_tensorflow, peak_rss_mb
from benchmarks.context import Context, sim_config
from benchmarks.costs import efficiency_rows, stages_note
from benchmarks.sections.common import model_flops
from benchmarks.report import Section, Target, row

TARGETS = {1: 160.0, 2: 450.0}
EARLIER = {1: "same run: ours 3.5× (network), 2.5× (whole infer())", 2: "same run: ours 3.3× (network), 1.2× (whole infer())"}
"""The earlier implementation measured side by side with ours (issue 16): only same-run ratios carry over."""
RSS_FLAT_TOL = 0.10
EARLIER_RSS = "grew to ~1.9 GB at 1,764 patterns"


def task_infer_timed(bundle: str, dataset: str, out: str, n_groups: int | None) -> dict[str, Any]:
    import_tensorflow()
    from ptycho.config.infer import InferConfig
    from ptycho.workflows.infer import infer

    rss_ready = current_rss_mb()
    marks: list[tuple[float, int]] = []

    def progress(done: int, total: int) -> None:
        marks.append((time.perf_counter(), done))

    t0 = time.perf_counter()
    result = infer(InferConfig(n_groups=n_groups), Path(bundle), Path(dataset), Path(out), progress=progress)
    wall = time.perf_counter() - t0
    C = result.gridsize**2
    steady = None
    if len(marks) >= 3:  # batches after the first (which compiles): read + network + write
        (t_first, g_first), (t_last, g_last) = marks[0], marks[-1]
        steady = (g_last - g_first) * C / max(t_last - t_first, 1e-9)
    size_mb = Path(out).stat().st_size / 1e6
    Path(out).unlink()
    peak = peak_rss_mb()  # before the FLOP count below loads the bundle again
    return {
        "n_groups": result.n_groups, "n_patterns_through_network": result.n_groups * C, "gridsize": result.gridsize,
        "wall_s": wall, "infer_seconds": result.seconds, "network_seconds": result.inference_seconds,
        "stage_seconds": result.stage_seconds, "network_patterns_per_second": result.patterns_per_second,
        "end_to_end_patterns_per_second": result.n_groups * C / wall,
        "steady_end_to_end_patterns_per_second": steady, "first_batch_s": marks[0][0] - t0 if marks else None,
        "rss_after_import_mb": rss_ready, "peak_rss_mb": peak, "patches_file_mb": size_mb,
        "prepass_flops": model_flops(bundle, dataset, result.estimate_passes_run or None)["prepass"],  # counted after the clocks
    }


def run(ctx: Context) -> Section:
    s = ctx.sizes
    N = s.sim_N
    sec = Section("infer", f"inference throughput and peak memory (N={N}, untrained default model, batch 64, XLA)")
    sizes = sorted(s.sim_sizes)
    datasets = dict(zip(sizes, ctx.datasets_for([(sim_config(N, n), "sim") for n in sizes])))
    bundles = {gs: ctx.work / "models" / f"untrained-N{N}-gs{gs}" for gs in s.infer_gridsizes}
    try:
        made = ctx.child("common", "make_bundles", jobs=[{"dataset": str(datasets[sizes[0]]), "out": str(path),
                                                          "gridsize": gs} for gs, path in bundles.items()])
    except ChildError as exc:
        sec.error("untrained bundles", exc)
        return sec
    flops = {gs: r["flops"] for gs, r in zip(bundles, made["results"])}
    sec.raw["flops"], sec.raw["matmul"] = {f"gs{gs}": f for gs, f in flops.items()}, ctx.matmul
    for gs, bundle in bundles.items():
        runs: dict[int, dict[str, Any]] = {}
        for n in sizes:
            if n == sizes[-1] and gs not in s.infer_large_gridsizes:
                continue
            n_groups = None if gs == 1 else n // gs**2
            out = ctx.work / f"patches-gs{gs}-{n}.h5"
            try:
                r = ctx.child("infer", "infer_timed", bundle=str(bundle), dataset=str(datasets[n]), out=str(out),
                              n_groups=n_groups)
            except ChildError as exc:
                sec.error(f"infer gs{gs} {n:,}", exc)
                continue
            runs[n] = r
            label = f"gridsize {gs}, {r['n_patterns_through_network']:,} patterns"
            sec.add(row("network throughput", r["network_patterns_per_second"], unit="patterns/s", config=label,
                        target=Target(">=", TARGETS[gs]) if gs in TARGETS else None, reference=EARLIER.get(gs, ""),
                        note="InferResult.patterns_per_second: network time only, steady state (the first, compiling batch excluded)"))
            sec.add(*efficiency_rows("network", label, flops[gs]["infer"], r["network_patterns_per_second"],
                                     ctx.matmul_rate("tensorflow")))
            stages, prepass = r["stage_seconds"], r["prepass_flops"]
            if prepass["total"]:
                sec.add(*efficiency_rows("pre-pass (global rPIE estimate)", label, prepass,
                                         prepass["n_patterns"] / max(stages["estimate"], 1e-9), ctx.matmul_rate("numpy"),
                                         library="NumPy"))
            sec.add(row("end-to-end throughput", r["end_to_end_patterns_per_second"], unit="patterns/s", config=label,
                        note=f"infer() wall {r['wall_s']:.1f} s = {stages_note(stages)} "
                             f"(first batch done after {r['first_batch_s']:.1f} s)"
                             + (f"; steady state after the first batch {r['steady_end_to_end_patterns_per_second']:.0f}"
                                if r["steady_end_to_end_patterns_per_second"] else "")))
            sec.add(row("peak RSS of infer", r["peak_rss_mb"], unit="MB", config=label,
                        reference=EARLIER_RSS if n == sizes[0] else "",
                        note=f"process peak; {r['rss_after_import_mb']:.0f} MB after importing TensorFlow"))
        sec.raw[f"gs{gs}"] = {str(k): v for k, v in runs.items()}
        if len(runs) >= 2:
            small, big = runs[min(runs)], runs[max(runs)]
            sec.add(row("peak RSS ratio largest / smallest", big["peak_rss_mb"] / small["peak_rss_mb"], unit="×",
                        config=f"gridsize {gs}, {max(runs):,} vs {min(runs):,} positions",
                        target=Target("within", 1.0, tol=RSS_FLAT_TOL, label="1 ± 10 %")))
    if ctx.quick:
        sec.notes.append("quick mode: N=32 and small sizes; the targets are for N=64, 10⁴ → 10⁵ patterns")
    return sec
