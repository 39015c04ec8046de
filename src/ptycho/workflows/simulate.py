"""``simulate``: object, probe and scan → diffraction counts, written in chunks (docs/simulation.md, docs/formats.md#datasets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho import __version__
from ptycho.config.base import to_plain
from ptycho.config.simulate import SimulateConfig
from ptycho.errors import ConfigError
from ptycho.physics.contracts import checked_object, checked_positions, checked_probe, refuse_scan_argument
from ptycho.physics.noise import chunk_noise_slices, poisson_counts
from ptycho.physics.object import make_object
from ptycho.physics.modes import mode_powers, n_modes
from ptycho.physics.probe import effective_diameter_px, mixed_state, normalise_probe, probe_energy
from ptycho.physics.scan import resolved_scan, scan_overlap
from ptycho.registry import Components
from ptycho.seeding import seed_stream

Progress = Callable[[int, int], None]
PREVIEW_PATTERNS = 3


@dataclass(frozen=True)
class Scene:
    """The physical set-up of a simulation before any diffraction is computed."""

    object: np.ndarray  # (S, S) complex64
    probe: np.ndarray  # (N, N) or (K, N, N) complex64, √counts
    x: np.ndarray  # (M,) float64
    y: np.ndarray
    overlap: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulationResult:
    path: Path
    config_path: Path
    preview_path: Path | None
    n_patterns: int
    N: int
    object_shape: tuple[int, int]
    overlap: dict[str, float]
    probe_photons: float
    mean_total_counts: float
    probe_modes: int
    seconds: float

    @property
    def patterns_per_second(self) -> float:
        return self.n_patterns / max(self.seconds, 1e-9)


def build_scene(config: SimulateConfig, components: Components) -> Scene:
    """Draw the object, make and normalise the probe, and lay out the scan, from one seed."""
    object_spec, object_arg = components.objects.get(config.object.kind, field_name="simulate.object.kind")
    probe_spec, probe_arg = components.probes.get(config.probe.kind, field_name="simulate.probe.kind")
    scan_spec, _ = components.scans.get(config.scan.kind, field_name="simulate.scan.kind")
    refuse_scan_argument(config.scan.kind)
    if config.scan.kind == "random" and (config.scan.step_px is not None or config.scan.jitter_px > 0):
        raise ConfigError("simulate.scan.step_px: a step (or jitter) applies to grid scans only; a random scan "
                          "draws its positions; set `simulate.scan.kind` to grid, or drop the step")
    size = config.object_size
    if size < config.N:
        raise ConfigError(f"simulate.object.size: {size} is smaller than N={config.N}; use `simulate.object.size` ≥ {config.N}")
    pattern = object_spec.generate(size, seed_stream(config.seed, "object"), config.object, object_arg)
    obj = checked_object(pattern, size, config.object.kind, lambda p: make_object(p, config.object))
    probe = checked_probe(probe_spec.make(config.N, config.probe, probe_arg), config.N, config.probe.kind)
    probe = mixed_state(probe, config.probe, where=f"simulate.probe.kind={config.probe.kind}")
    probe = normalise_probe(probe, config.photon_gauge)
    positions = scan_spec.make(obj.shape, config.N, config.scan, seed_stream(config.seed, "scan", *_scan_key(config)))
    x, y = checked_positions(positions, obj.shape, config.N, config.scan.kind)
    groups = config.gridsize**2
    if len(x) < groups:
        raise ConfigError(
            f"simulate.scan.n_images: the scan holds {len(x)} positions but gridsize {config.gridsize} "
            f"needs at least {groups}; raise `simulate.scan.n_images`"
        )
    overlap = scan_overlap(x, y, effective_diameter_px(probe))
    return Scene(obj, probe, x, y, overlap)


def _scan_key(config: SimulateConfig) -> tuple[int, ...]:
    """Extra seed key for scan and noise: empty unless ``scan.seed`` asks for another scan."""
    return () if config.scan.seed is None else (1, config.scan.seed)


def dataset_metadata(config: SimulateConfig, scene: Scene) -> dict[str, Any]:
    """What a simulated dataset records about its origin (docs/formats.md#datasets ``metadata``)."""
    import h5py

    from ptycho._tf import tf

    meta: dict[str, Any] = {
        "created_by": "ptycho simulate",
        "config": {"simulate": to_plain(config)},
        "seed": config.seed,
        "gridsize": config.gridsize,
        "nphotons": config.photon_gauge,
        "noise": config.add_noise,
        "object_shape": list(scene.object.shape),
        "overlap": scene.overlap,
        "versions": {"ptycho": __version__, "numpy": np.__version__, "tensorflow": tf().__version__, "h5py": h5py.__version__},
    }
    for key in ("photon_energy_eV", "detector_distance_m", "pixel_size_m"):
        if getattr(config, key) is not None:
            meta[key] = getattr(config, key)
    if np.ndim(scene.probe) == 3:  # a mixed state: how its power is shared
        powers = mode_powers(scene.probe)
        meta["mixed_state"] = {"modes": int(len(powers)), "power_fractions": [float(p) for p in powers / powers.sum()]}
    return meta


def iter_pattern_chunks(config: SimulateConfig, scene: Scene):
    """Yield ``(start, counts)`` chunks of at most ``chunk_size`` patterns, in order.

    The forward model runs XLA-compiled on fixed-size chunks (the last one padded, so it compiles
    once). Poisson noise for chunk ``k`` is drawn on worker threads (NumPy releases the GIL) from
    streams keyed by ``(seed, k, slice)`` while the next chunk is computed, so the result is
    deterministic and independent of scheduling.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from ptycho._tf import tf
    from ptycho.physics.operators.tf_ops import simulate_patterns

    tf_ = tf()
    obj = tf_.constant(scene.object)
    probe = tf_.constant(scene.probe)
    forward = tf_.function(lambda xs, ys: simulate_patterns(obj, probe, xs, ys), jit_compile=True, autograph=False)
    M, size = len(scene.x), min(config.chunk_size, len(scene.x))

    def noisy(expected: np.ndarray, chunk: int) -> np.ndarray:
        if not config.add_noise:
            return expected
        out = np.empty_like(expected)
        for part, sl in enumerate(chunk_noise_slices(len(expected))):
            out[sl] = poisson_counts(expected[sl], seed_stream(config.seed, "noise", *_scan_key(config), chunk, part))
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque = deque()
        for chunk, start in enumerate(range(0, M, size)):
            stop = min(start + size, M)
            pad = size - (stop - start)
            xs = np.pad(scene.x[start:stop], (0, pad), mode="edge")
            ys = np.pad(scene.y[start:stop], (0, pad), mode="edge")
            expected = forward(tf_.constant(xs), tf_.constant(ys)).numpy()[: stop - start]
            pending.append((start, pool.submit(noisy, expected, chunk)))
            if len(pending) > 1:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


def preview_path_for(out: Path) -> Path:
    """``data.h5`` → ``data.preview.png``."""
    return out.with_name(out.stem + ".preview.png")


def file_inputs(config: SimulateConfig) -> dict[str, Path]:
    """Files a simulation reads: the argument of an object or probe kind (``image:PATH``,
    ``file:PATH``, or a plugin's) that names an existing file."""
    inputs = {}
    for role, kind in (("object file", config.object.kind), ("probe file", config.probe.kind)):
        _, sep, arg = kind.partition(":")
        if sep and arg and Path(arg).is_file():
            inputs[role] = Path(arg)
    return inputs


def simulate(
    config: SimulateConfig,
    out: Path,
    components: Components | None = None,
    *,
    fmt: str | None = None,
    preview: bool = True,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a dataset and write it to ``out`` (``.h5`` streamed, ``.npz`` in memory),
    its resolved config beside it, and a preview PNG.

    ``fmt``: ``h5``, ``npz`` or ``ptychopinn-npz`` (default from the suffix).
    """
    from ptycho.io.config_file import config_path_for, write_resolved_config
    from ptycho.io.datasets import output_format
    from ptycho.io.paths import check_output_file, refuse_overwriting_inputs

    t0 = time.perf_counter()
    out = check_output_file(out)
    fmt = output_format(out, fmt)
    refuse_overwriting_inputs([out, config_path_for(out), preview_path_for(out)], file_inputs(config), "simulate")
    scene = build_scene(config, components or Components.builtin())
    M, N = len(scene.x), config.N
    first, total_counts = write_patterns(config, scene, out, fmt, progress)

    config_path = write_resolved_config(out, "simulate", config.model_copy(update={"scan": resolved_scan(config.scan, M)}))
    preview_path = None
    if preview:
        from ptycho.figures.preview import simulation_preview

        preview_path = simulation_preview(
            preview_path_for(out), obj=scene.object, probe=scene.probe,
            x=scene.x, y=scene.y, patterns=first if first is not None else np.zeros((0, N, N)),
        )
    return SimulationResult(
        path=out, config_path=config_path, preview_path=preview_path, n_patterns=M, N=N,
        object_shape=tuple(scene.object.shape), overlap=scene.overlap,
        probe_photons=probe_energy(scene.probe), mean_total_counts=total_counts / M, probe_modes=n_modes(scene.probe),
        seconds=time.perf_counter() - t0,
    )


def write_patterns(config: SimulateConfig, scene: Scene, out: Path, fmt: str,
                   progress: Progress | None = None) -> tuple[np.ndarray | None, float]:
    """Simulate the patterns of ``scene`` chunk by chunk and write the dataset ``out``: streamed to
    HDF5 (``fmt`` ``h5``), else gathered in memory and saved as ``fmt``. ``progress(done, total)``
    follows the patterns written.

    Returns
    -------
    first : (≤ PREVIEW_PATTERNS, N, N) float32 or None
        The first patterns, for the preview (None for an empty scan).
    total_counts : float
        Counts summed over every pattern.
    """
    from ptycho.data.dataset import Dataset
    from ptycho.io.datasets import save_dataset
    from ptycho.io.h5 import H5DatasetWriter

    meta = dataset_metadata(config, scene)
    M, N = len(scene.x), config.N
    scan_index = np.arange(M, dtype=np.int64)
    first: np.ndarray | None = None
    total_counts = 0.0

    def consume(chunks, write):
        nonlocal first, total_counts
        for start, counts in chunks:
            write(start, counts)
            total_counts += float(counts.sum(dtype=np.float64))
            if first is None:
                first = counts[:PREVIEW_PATTERNS].copy()
            if progress:
                progress(start + len(counts), M)

    if fmt == "h5":
        with H5DatasetWriter(out, n_patterns=M, N=N, x=scene.x, y=scene.y, probe=scene.probe,
                             object=scene.object, scan_index=scan_index, metadata=meta) as writer:
            consume(iter_pattern_chunks(config, scene), writer.write)
    else:
        diffraction = np.empty((M, N, N), dtype=np.float32)

        def store(start: int, counts: np.ndarray) -> None:
            diffraction[start:start + len(counts)] = counts

        consume(iter_pattern_chunks(config, scene), store)
        save_dataset(out, Dataset(diffraction, scene.x, scene.y, scene.probe, scene.object, scan_index, meta), format=fmt)
    return first, total_counts
