"""The object a patches file's crops make on one canvas: the overlap average and its least-squares
refinement, for ``stitch`` (docs/reconstruction.md#stitching).

Each member patch ``(N, N)`` contributes its central ``M×M`` crop (``M = N/2`` by default, more on
a scan whose spacing is wider: :meth:`~ptycho.config.stitch.StitchConfig.crop_size`), placed where its pixels came
from with :func:`~ptycho.physics.operators.numpy_ops.place` (bilinear, the adjoint of window
extraction), and the crops are overlap-averaged with the same support in numerator and
denominator::

    num = Σ place(crop),   den = Σ place(ones),   object = num / den  where den > DEN_RTOL·max(den)

so pixels outside every crop stay exactly 0 (and are marked unsupported); nothing is amplified.

**Least squares** (``method = "lsq"``; ``"auto"``, the default, uses it for gridsize 1). The
average is not the object whose windows best match the crops: off whole pixels, extraction and
placement each interpolate, so the average blurs, even for exact windows. With gridsize > 1 every
position comes in several groups' patches, which a network does not make exactly consistent; there
the average is the better estimate, so ``auto`` averages (the measurements behind both choices are
in ``benchmarks/RESULTS.md``). With
``E_j`` the crop-window extraction, the least-squares object solves ``(Σ E_jᵀE_j) o = Σ E_jᵀ c_j``
(``= num``); :func:`lsq_refine` runs ``lsq_iterations`` conjugate-gradient steps on it, started from
the average and preconditioned by ``den`` (the diagonal's row sums), over the pixels a whole crop
pixel's weight covers (``den ≥`` :data:`LSQ_MIN_WEIGHT`); thinner edge pixels keep their average.
Exact windows come back exact (to float32 rounding), and the whole-pixel case is unchanged.

**Crop geometry.** The crop starts at patch index ``s = (N − M) // 2``. Its centre lies at
``s + (M−1)/2`` in patch coordinates, i.e. ``(x, y) + δ·(1, 1)`` globally with
``δ = s + (M−1)/2 − (N−1)/2``: ``δ = 0`` when ``N − M`` is even (the crop is centred on the
window), ``δ = −½`` when it is odd (no whole-pixel crop can be centred then). The crop is placed
at its *true* centre ``(x + δ, y + δ)``, so every pixel returns exactly to where it was extracted
and no resampling is involved.

**Canvas.** ``origin = floor(min(c − (M−1)/2))`` over all crop centres ``c`` (per axis) and the last
pixel is ``ceil(max(c + (M−1)/2))``: the canvas holds every pixel any crop touches, no more.
Placement uses the NumPy backend of :mod:`ptycho.physics.operators`: stitch needs no gradients,
the backend sums in a fixed order in float64 (the same file gives the same object bit for bit),
and the command then never loads TensorFlow. It runs a chunk of groups at a time on a sub-canvas
spanning that chunk only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ptycho.config.stitch import StitchConfig
from ptycho.data.validation import MAX_CANVAS_PX
from ptycho.errors import DataError
from ptycho.io.patches import PatchesFile
from ptycho.physics.operators.geometry import window_geometry
from ptycho.physics.operators.numpy_ops import extract, place

Progress = Callable[[int, int], None]

DEN_RTOL = 1e-6
"""Pixels whose summed placement weight is below ``DEN_RTOL·max`` are unsupported (set to 0)."""
LSQ_MIN_WEIGHT = 0.5
"""Pixels solved for by ``lsq``: summed placement weight at least half of one crop pixel's."""
LSQ_RTOL = 1e-5
"""The solve stops once the (preconditioned) residual is this small relative to ``num``: the
float32 operators cannot do better, and exact windows start there."""
LSQ_CHUNK = 4096
"""Crops extracted and placed at a time by one application of ``Σ E_jᵀE_j``."""
SNAP_PX = 1e-9
"""Crop edges within this distance of a whole pixel are treated as whole (no spurious extra row)."""


@dataclass(frozen=True, eq=False)
class StitchedObject:
    """What :func:`stitch_patches` made of a patches file.

    Attributes
    ----------
    object : (H, W) complex64
        The object on the canvas; exactly 0 where no crop reached.
    support : (H, W) bool
        Pixels some crop reached (summed placement weight above ``DEN_RTOL·max``).
    origin_x, origin_y : int
        Global object pixel of canvas pixel ``(0, 0)``.
    crop : int
        Crop side ``M`` (``stitch.crop``, or from ``N``, the probe's diameter and the scan spacing).
    crop_source : str
        What set ``M``: ``"stitch.crop"``, ``"N/2"``, ``"probe diameter"`` or ``"scan spacing"``.
    crop_offset : float
        ``δ`` of :func:`crop_geometry`: 0 or −½ px.
    spacing : float
        The scan spacing in pixels (:func:`scan_spacing_px`), NaN for a single position.
    probe_diameter : float or None
        The probe's effective diameter ``infer`` recorded in the patches file (px), if any.
    method : {"average", "lsq"}
        How the object was made (``stitch.method`` resolved for the patches' gridsize).
    """

    object: np.ndarray
    support: np.ndarray
    origin_x: int
    origin_y: int
    crop: int
    crop_source: str
    crop_offset: float
    spacing: float
    probe_diameter: float | None
    method: str


def recorded_probe_diameter(pf: PatchesFile) -> float | None:
    """The effective diameter (px) of the probe ``infer`` made the patches with, from their
    provenance; None for patches written before it was recorded."""
    value = pf.provenance.get("probe_diameter_px")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else None


def stitch_patches(pf: PatchesFile, config: StitchConfig, progress: Progress | None = None) -> StitchedObject:
    """Place the central ``M×M`` crop of every patch of ``pf`` (read ``stitch.chunk_groups`` groups
    at a time) on one canvas and overlap-average them; with method ``lsq`` refine the average by
    least squares (:func:`lsq_refine`). ``progress(done, total)`` follows the groups placed.

    Raises
    ------
    ConfigError
        A crop larger than ``N``.
    DataError
        Positions spanning more than ``MAX_CANVAS_PX`` pixels (not in object pixels).
    """
    spacing, diameter = scan_spacing_px(pf.x, pf.y), recorded_probe_diameter(pf)
    M, source = config.crop_choice(pf.N, spacing, diameter)
    s, delta = crop_geometry(pf.N, M)
    ox, oy, H, W = canvas_extent(pf.x + delta, pf.y + delta, M)
    if H * W > MAX_CANVAS_PX:
        raise DataError(f"{pf.path}: the positions span a {H}×{W} px canvas (more than {MAX_CANVAS_PX} px); "
                        "x and y must be in object pixels")

    def chunks():
        for start, block, x, y in pf.iter_chunks(config.chunk_groups):
            crops = block[:, :, s:s + M, s:s + M].reshape(-1, M, M)
            yield crops, x.reshape(-1) + delta, y.reshape(-1) + delta
            if progress:
                progress(start + len(block), pf.n_groups)

    num, den = accumulate_crops(chunks(), (ox, oy), (H, W))
    support = den > DEN_RTOL * den.max()
    values = np.where(support, num / np.where(support, den, 1.0), 0)  # the overlap average
    method = config.method_for(pf.C)
    if method == "lsq":
        cx, cy = (pf.x.reshape(-1) + delta - ox), (pf.y.reshape(-1) + delta - oy)
        values = lsq_refine(values, num, den, cx, cy, M, config.lsq_iterations)
    obj = np.where(support, values, 0).astype(np.complex64)
    return StitchedObject(obj, support, ox, oy, M, source, delta, spacing, diameter,
                          method)


def crop_geometry(N: int, M: int) -> tuple[int, float]:
    """Start index ``s`` of the central ``M×M`` crop of an ``N×N`` patch, and the offset ``δ``
    (0 or −½ px) of the crop's centre from the window centre (module docstring)."""
    s = (N - M) // 2
    return s, s + (M - 1) / 2 - (N - 1) / 2


def _snap(v: float, rounding: Callable[[float], float]) -> int:
    r = round(v)
    return int(r) if abs(v - r) < SNAP_PX else int(rounding(v))


def canvas_extent(cx: np.ndarray, cy: np.ndarray, M: int) -> tuple[int, int, int, int]:
    """``(origin_x, origin_y, H, W)`` of the canvas holding every ``M×M`` crop centred at ``(cx, cy)``."""
    half = (M - 1) / 2
    ox, oy = _snap(float(np.min(cx)) - half, math.floor), _snap(float(np.min(cy)) - half, math.floor)
    last_x, last_y = _snap(float(np.max(cx)) + half, math.ceil), _snap(float(np.max(cy)) + half, math.ceil)
    return ox, oy, last_y - oy + 1, last_x - ox + 1


def accumulate_crops(
    chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], origin: tuple[int, int], shape: tuple[int, int],
    *, support: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum the bilinear placements of crops and (``support``) of their support.

    Parameters
    ----------
    chunks : iterable of (crops (K, M, M) complex, cx (K,), cy (K,))
        Crops and their centres in global object pixels.
    origin : (origin_x, origin_y) int
    shape : (H, W)
    support : also place ones (the denominator); without it ``den`` is None

    Returns
    -------
    num : (H, W) complex128, ``Σ place(crop)``
    den : (H, W) float64, ``Σ place(ones)``, or None
    """
    num = np.zeros(shape, np.complex128)
    den = np.zeros(shape, np.float64) if support else None
    for crops, cx, cy in chunks:
        M = crops.shape[-1]
        lx, ly = cx - origin[0], cy - origin[1]  # canvas coordinates
        sx, sy, h, w = canvas_extent(lx, ly, M)  # sub-canvas of this chunk
        # one spare pixel on every side: a block edge within SNAP_PX of a whole pixel may reach
        # one pixel past the snapped extent, always with a bilinear weight of (almost) 0
        windows = window_geometry(lx - sx + 1, ly - sy + 1, M)
        num[sy:sy + h, sx:sx + w] += place(crops.astype(np.complex64), windows, (h + 2, w + 2))[1:-1, 1:-1]
        if den is not None:
            ones = np.ones(crops.shape, np.float32)
            den[sy:sy + h, sx:sx + w] += place(ones, windows, (h + 2, w + 2))[1:-1, 1:-1]
    return num, den


def lsq_refine(obj: np.ndarray, num: np.ndarray, den: np.ndarray, cx: np.ndarray, cy: np.ndarray, M: int,
               iterations: int) -> np.ndarray:
    """Conjugate-gradient steps towards the least-squares object (module docstring).

    Parameters
    ----------
    obj : (H, W) complex, the overlap average (start), canvas coordinates
    num, den : the accumulated placements of the crops and of their support
    cx, cy : (K,) crop centres in canvas pixels
    M : crop side
    iterations : int

    Returns
    -------
    (H, W) complex128; pixels below :data:`LSQ_MIN_WEIGHT` keep their value from ``obj``.
    """
    H, W = obj.shape
    solved = den >= LSQ_MIN_WEIGHT

    def normal(o: np.ndarray) -> np.ndarray:  # Σ E_jᵀ E_j o
        canvas = np.pad(o.astype(np.complex64), 1)  # a spare zero pixel per side, as in accumulate_crops

        def chunks():
            for start in range(0, len(cx), LSQ_CHUNK):
                sx, sy = cx[start:start + LSQ_CHUNK], cy[start:start + LSQ_CHUNK]
                yield extract(canvas, window_geometry(sx + 1, sy + 1, M)), sx, sy

        return accumulate_crops(chunks(), (0, 0), (H, W), support=False)[0]

    o = np.asarray(obj, np.complex128).copy()
    residual = np.where(solved, num - normal(o), 0)
    inv = np.where(solved, 1.0 / np.maximum(den, LSQ_MIN_WEIGHT), 0.0)
    z = residual * inv
    direction, rz = z.copy(), np.vdot(residual, z).real
    target = LSQ_RTOL**2 * np.vdot(num, np.where(solved, num * inv, 0)).real
    for _ in range(iterations):
        if rz <= target:  # converged (exact windows start here)
            break
        q = np.where(solved, normal(direction), 0)
        step = rz / np.vdot(direction, q).real
        o += step * direction
        residual -= step * q
        z = residual * inv
        rz, previous = np.vdot(residual, z).real, rz
        direction = z + (rz / previous) * direction
    return o


SPACING_QUANTILE = 0.95
"""The scan spacing is this quantile of the positions' nearest-neighbour distances: a raster's
step, and robust to a few isolated positions of a random scan."""


def scan_spacing_px(x: np.ndarray, y: np.ndarray) -> float:
    """The scan's spacing: :data:`SPACING_QUANTILE` of the nearest-neighbour distances between the
    distinct positions (group members repeat a position), in pixels; NaN for fewer than two.

    Parameters
    ----------
    x, y : any shape, float
        Positions in object pixels (the member positions of a patches file).
    """
    from scipy.spatial import cKDTree

    points = np.unique(np.round(np.stack([np.ravel(x), np.ravel(y)], axis=1), 6), axis=0)
    if len(points) < 2:
        return float("nan")
    distance, _ = cKDTree(points).query(points, k=2)
    return float(np.quantile(distance[:, 1], SPACING_QUANTILE))
