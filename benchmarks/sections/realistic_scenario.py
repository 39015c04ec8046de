"""The realistic scenario of the ``realistic`` section: a measured beam and specimen, a noisy scan
whose true positions the solvers are not told, and only a wrong guess of the probe.

Built from ``../shared/data/gold_balls_reconstruction.npz`` (a real reconstructed gold-balls
specimen and its two-mode probe, 11.1 nm object pixels; see that folder's README):

* **probe**: the two real modes, zero-padded (or centre-cut) from 104 px to ``N``, summed power the
  dose (photons per pattern through a unit object);
* **scan**: the real translations (metres → object pixels through the reconstruction's pixel
  basis; a raster of ~40 × 40 at a 2.7 px step), thinned to every ``stride``-th row and column. The
  *training* scan takes the rows and columns ``0, stride, …``; the *test* scan the ones half a
  stride further (a second set of positions over the same region); ``extent_px`` keeps only the
  positions within that span of the scan's first corner (quick mode);
* **object**: the specimen at its own pixel size, cut around the scan with an ``N/2`` margin;
* **positions**: the diffraction is computed at ``nominal + δ`` with ``δ`` Gaussian, σ =
  ``position_sigma_px`` per axis (fixed seed), while the dataset's ``x, y`` hold the nominal
  positions: what the solvers read. The truth stays in a separate file for scoring;
* **noise**: Poisson at ``dose`` photons per pattern (simulate's forward model and noise streams);
* **initial probe** (the dataset's ``probe``, ``metadata["probe_is_guess"] = true``): the true
  dominant mode defocused by a quadratic far-field phase of ``defocus_rad`` at the detector edge
  (a known optic at the wrong focus), with a second mode derived from it as
  ``simulate --probe-modes 2`` would (``ptycho.physics.modes.derive_modes``) — the true second
  mode is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.child import REPO

GOLD = REPO.parent / "shared" / "data" / "gold_balls_reconstruction.npz"
RASTER_STEP_FACTOR = 1.5
"""A new raster row starts where a column coordinate falls back by more than this many median steps."""


@dataclass(frozen=True)
class ScenarioSpec:
    """What the scenario is made of (sizes from ``benchmarks.sizes``)."""

    N: int = 128
    dose: float = 1e6
    stride: int = 2
    extent_px: float | None = None
    position_sigma_px: float = 0.7
    defocus_rad: float = 80.0
    seed: int = 0


@dataclass(frozen=True)
class ScenarioFiles:
    """The datasets the solvers read and the truth kept apart for scoring."""

    train: Path
    test: Path
    truth: Path  # .npz: probe (K, N, N); {train,test}_{x,y}_true; {train,test}_{x,y}_nominal


def real_positions_px(gold: Any) -> tuple[np.ndarray, np.ndarray]:
    """The recorded translations as (x, y) in object pixels (the reconstruction's pixel basis)."""
    basis = np.asarray(gold["basis_m"], np.float64)  # (3, 2): metres per pixel of rows, columns
    rows_cols, *_ = np.linalg.lstsq(basis, np.asarray(gold["translation_m"], np.float64).T, rcond=None)
    return rows_cols[1], rows_cols[0]


def raster_indices(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of each position of a row-by-row raster (``x`` in scan order)."""
    step = float(np.median(np.abs(np.diff(x))))
    new_row = np.diff(x) < -RASTER_STEP_FACTOR * step
    rows = np.concatenate([[0], np.cumsum(new_row)])
    cols = np.zeros(len(x), np.int64)
    for r in np.unique(rows):
        members = np.flatnonzero(rows == r)
        cols[members] = np.arange(len(members))
    return rows, cols


def thinned(x: np.ndarray, y: np.ndarray, stride: int, offset: int, extent: float | None) -> np.ndarray:
    """Indices of the raster positions on every ``stride``-th row and column from ``offset``."""
    rows, cols = raster_indices(x)
    keep = (rows % stride == offset % stride) & (cols % stride == offset % stride)
    if extent is not None:
        keep &= (x - x.min() <= extent) & (y - y.min() <= extent)
    return np.flatnonzero(keep)


def fit_probe(modes: np.ndarray, N: int) -> np.ndarray:
    """``(K, n, n)`` modes zero-padded or centre-cut to ``(K, N, N)``."""
    n = modes.shape[-1]
    if n <= N:
        lo = (N - n) // 2
        out = np.zeros((len(modes), N, N), np.complex64)
        out[:, lo:lo + n, lo:lo + n] = modes
        return out
    lo = (n - N) // 2
    return np.ascontiguousarray(modes[:, lo:lo + N, lo:lo + N]).astype(np.complex64)


def defocused(mode: np.ndarray, edge_phase_rad: float) -> np.ndarray:
    """``mode`` propagated out of focus: its far field times ``exp(i·c·(k/k_max)²)``, ``c`` the
    phase at the detector edge (unitary FFTs, DC-centred, so the power is unchanged)."""
    N = mode.shape[-1]
    k = np.fft.fftshift(np.fft.fftfreq(N)) * 2  # −1 … 1 at the detector edge
    kk = k[None, :] ** 2 + k[:, None] ** 2
    far = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(mode), norm="ortho"))
    near = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(far * np.exp(1j * edge_phase_rad * kk)), norm="ortho"))
    return near.astype(np.complex64)


def probe_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """``|⟨a, b⟩| / (‖a‖·‖b‖)``: 1 for probes equal up to a global phase and scale."""
    a, b = np.asarray(a, np.complex128).ravel(), np.asarray(b, np.complex128).ravel()
    return float(abs(np.vdot(a, b)) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def true_and_guess_probes(gold: Any, spec: ScenarioSpec) -> tuple[np.ndarray, np.ndarray]:
    """The true two-mode probe and the initial guess, both at the photon gauge ``spec.dose``."""
    from ptycho.physics.modes import derive_modes, orthogonalise_modes
    from ptycho.physics.probe import normalise_probe
    from ptycho.config.physics import DEFAULT_MODE_POWER_RATIO

    truth = normalise_probe(orthogonalise_modes(fit_probe(np.asarray(gold["probe_modes"]), spec.N)), spec.dose)
    guess = derive_modes(defocused(truth[0], spec.defocus_rad), len(truth), DEFAULT_MODE_POWER_RATIO)
    return truth, normalise_probe(guess, spec.dose)


MARGIN_PX = 8
"""Object border beyond the outermost window: room for the position errors (≈ 4σ)."""


def specimen_crop(gold: Any, size: int) -> np.ndarray:
    """``size × size`` of the specimen at its own pixel size, centred on its specimen region
    (flat background beyond the reconstructed area)."""
    from ptycho.physics.object import specimen_box

    obj = np.asarray(gold["object"], np.complex64)
    r0, c0, side = specimen_box(obj.astype(np.complex128))
    cr, cc = r0 + side // 2, c0 + side // 2
    pad = max(0, size // 2 + 1 - min(cr, cc, obj.shape[0] - cr, obj.shape[1] - cc))
    if pad:  # the background continues beyond the file's frame
        obj = np.pad(obj, pad, mode="edge")
        cr, cc = cr + pad, cc + pad
    return np.ascontiguousarray(obj[cr - size // 2:cr - size // 2 + size, cc - size // 2:cc - size // 2 + size])


def scan_sets(gold: Any, spec: ScenarioSpec) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Nominal (x, y) of the training and test scans in the object frame, and the object side."""
    x, y = real_positions_px(gold)
    picks = {"train": thinned(x, y, spec.stride, 0, spec.extent_px),
             "test": thinned(x, y, spec.stride, spec.stride // 2 or 1, spec.extent_px)}
    used = np.concatenate(list(picks.values()))
    x0, y0 = x[used].min(), y[used].min()
    span = max(x[used].max() - x0, y[used].max() - y0)
    size = int(np.ceil(span + spec.N + 2 * MARGIN_PX))
    shift = (spec.N - 1) / 2 + MARGIN_PX
    return {name: (x[i] - x0 + shift, y[i] - y0 + shift) for name, i in picks.items()}, size


def write_scan(path: Path, spec: ScenarioSpec, obj: np.ndarray, truth_probe: np.ndarray, guess: np.ndarray,
               nominal: tuple[np.ndarray, np.ndarray], true_xy: tuple[np.ndarray, np.ndarray],
               noise_seed: int, extra: dict[str, Any]) -> None:
    """Counts at the true positions with the true probe; the file holds the nominal positions and
    the guess (simulate's forward model and noise, ``ptycho.workflows.simulate``)."""
    from ptycho.config.simulate import SimulateConfig
    from ptycho.io.h5 import H5DatasetWriter
    from ptycho.workflows.probe_setup import PROBE_GUESS_KEY
    from ptycho.workflows.simulate import Scene, dataset_metadata, iter_pattern_chunks

    config = SimulateConfig(N=spec.N, nphotons=spec.dose, seed=noise_seed, chunk_size=128)
    scene = Scene(obj, truth_probe, *true_xy)
    meta = {k: v for k, v in dataset_metadata(config, scene).items() if k not in ("config", "overlap", "mixed_state")}
    meta.update({"created_by": "benchmarks realistic scenario", PROBE_GUESS_KEY: True, **extra})
    M = len(nominal[0])
    with H5DatasetWriter(path, n_patterns=M, N=spec.N, x=nominal[0], y=nominal[1], probe=guess, object=obj,
                         scan_index=np.arange(M), metadata=meta) as writer:
        for start, counts in iter_pattern_chunks(config, scene):
            writer.write(start, counts)


def build_scenario(spec: ScenarioSpec, folder: Path, gold_path: Path = GOLD) -> ScenarioFiles:
    """Write the training and test datasets and the truth file of ``spec`` into ``folder``."""
    from ptycho.io.npz import save_npz_arrays
    from ptycho.seeding import seed_stream

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(gold_path, allow_pickle=False) as gold:
        truth_probe, guess = true_and_guess_probes(gold, spec)
        scans, size = scan_sets(gold, spec)
        obj = specimen_crop(gold, size)
    arrays: dict[str, np.ndarray] = {"probe": truth_probe, "guess_probe": guess}
    files = ScenarioFiles(folder / "train.h5", folder / "test.h5", folder / "truth.npz")
    for k, (name, nominal) in enumerate(scans.items()):
        rng = seed_stream(spec.seed, "realistic-positions", k)
        delta = rng.normal(0.0, spec.position_sigma_px, (2, len(nominal[0])))
        true_xy = (nominal[0] + delta[0], nominal[1] + delta[1])
        extra = {"scenario": {"scan": name, "source": str(gold_path.name), **spec.__dict__,
                              "truth_file": files.truth.name,
                              "guess_overlap_dominant": probe_overlap(guess[0], truth_probe[0])}}
        write_scan(getattr(files, name), spec, obj, truth_probe, guess, nominal, true_xy, spec.seed + 1 + k, extra)
        arrays.update({f"{name}_x_nominal": nominal[0], f"{name}_y_nominal": nominal[1],
                       f"{name}_x_true": true_xy[0], f"{name}_y_true": true_xy[1]})
    save_npz_arrays(files.truth, arrays)
    return files


def task_build(folder: str, spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`build_scenario` in a child process; what it made."""
    from ptycho.io.datasets import load_dataset

    scenario = ScenarioSpec(**spec)
    files = build_scenario(scenario, Path(folder))
    out: dict[str, Any] = {name: str(getattr(files, name)) for name in ("train", "test", "truth")}
    for name in ("train", "test"):
        with load_dataset(getattr(files, name)) as ds:
            out[f"{name}_patterns"] = ds.n_patterns
            out["object_shape"] = list(ds.object.shape)
            out["guess_overlap"] = ds.metadata["scenario"]["guess_overlap_dominant"]
            out[f"{name}_mean_counts"] = float(np.mean([ds.diffraction[i].sum() for i in range(min(ds.n_patterns, 64))]))
    return out
