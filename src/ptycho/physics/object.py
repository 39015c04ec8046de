"""Objects (docs/simulation.md#objects). Each synthetic generator returns a real pattern ``p ∈ [0, 1]``;
:func:`make_object` maps it to ``a(p)·exp(i·φ(p))`` with the configured ranges. ``file:PATH[:KEY]``
(:func:`file_object`) returns a complex transmission read from a file instead, used as it is."""

from __future__ import annotations

import numpy as np

from ptycho.config.physics import ObjectConfig
from ptycho.errors import DataError


def _gaussian_filter(image: np.ndarray, sigma: float) -> np.ndarray:
    """SciPy's Gaussian filter, imported on use: listing the built-in objects stays light."""
    from scipy import ndimage

    return ndimage.gaussian_filter(image, sigma)


def _to_unit_range(pattern: np.ndarray) -> np.ndarray:
    lo, hi = float(pattern.min()), float(pattern.max())
    if hi - lo <= 0:
        return np.zeros_like(pattern, dtype=np.float64)
    return (pattern - lo) / (hi - lo)


def lines_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """Random straight line segments, smoothed at several scales and summed.

    Segment count grows with the area (about one per 150 px²); widths are one pixel before
    smoothing, so the multi-scale blur (σ = 0.5, 1, 2 × ``feature_scale_px``) gives both
    sharp and soft features.
    """
    n_lines = max(4, int(size * size / 150))
    canvas = np.zeros((size, size), dtype=np.float64)
    for _ in range(n_lines):
        y0, x0 = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.05, 0.3) * size
        t = np.linspace(-0.5, 0.5, max(2, int(2 * length)))
        ys = np.clip(np.round(y0 + t * length * np.sin(angle)), 0, size - 1).astype(int)
        xs = np.clip(np.round(x0 + t * length * np.cos(angle)), 0, size - 1).astype(int)
        canvas[ys, xs] = 1.0
    s = config.feature_scale_px
    blurred = sum(_gaussian_filter(canvas, sigma * s) for sigma in (0.5, 1.0, 2.0))
    return _to_unit_range(np.clip(blurred, 0, np.quantile(blurred, 0.995) + 1e-12))


def grf_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """Gaussian random field with a power-law spectrum ``|k|^-3`` cut off at 1/(4·feature_scale)."""
    ky = np.fft.fftfreq(size)[:, None]
    kx = np.fft.fftfreq(size)[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = 1.0
    amplitude = k**-1.5 * np.exp(-((k * 4 * config.feature_scale_px) ** 2))
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))
    return _to_unit_range(np.real(np.fft.ifft2(noise * amplitude)))


def points_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """Random point scatterers (about one per 100 px²) blurred to ~2 px spots."""
    canvas = np.zeros((size, size), dtype=np.float64)
    n_points = max(4, size * size // 100)
    ys = rng.integers(0, size, n_points)
    xs = rng.integers(0, size, n_points)
    canvas[ys, xs] = rng.uniform(0.5, 1.0, n_points)
    return _to_unit_range(_gaussian_filter(canvas, 1.0 * config.feature_scale_px))


def diagonals_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """Diagonal stripes whose period sweeps from 4 to 16 px across the object (resolution test)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = 4.0 + 12.0 * yy / max(size - 1, 1)
    phase0 = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 * (1 + np.sin(2 * np.pi * (xx + yy) / period + phase0))
    return _to_unit_range(_gaussian_filter(stripes, 0.5 * config.feature_scale_px))


def siemens_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """A 36-spoke Siemens star filling the object, lightly smoothed."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    theta = np.arctan2(yy - c, xx - c)
    r = np.hypot(yy - c, xx - c)
    star = (np.sin(18 * theta) > 0).astype(np.float64) * (r < 0.48 * size)
    return _to_unit_range(_gaussian_filter(star, 0.5 * config.feature_scale_px))


def image_pattern(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """Any image file (PNG, TIFF, JPEG, …, or a 2-D ``.npy``) as grey levels, resized to ``size``."""
    from pathlib import Path

    from skimage import color, io, transform

    if not arg:
        raise DataError("object.kind: 'image:' needs a path, e.g. `simulate.object.kind` = image:cells.png")
    path = Path(arg)
    if not path.is_file():
        raise DataError(f"{arg}: image file not found; set `simulate.object.kind` to image:PATH of an existing file")
    try:
        if path.suffix == ".npy":
            img = np.load(path, allow_pickle=False)
        else:
            img = io.imread(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"{arg}: cannot read image ({exc}); use PNG, TIFF, JPEG or .npy") from exc
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3]) if img.shape[-1] >= 3 else img[..., 0]
    if img.ndim != 2:
        raise DataError(f"{arg}: expected a 2-D grey or RGB image, got shape {img.shape}")
    img = transform.resize(img, (size, size), anti_aliasing=True)
    return _to_unit_range(img)


FILE_KEY = "object"
"""The array ``file:PATH`` reads from an ``.npz`` unless ``file:PATH:KEY`` names another."""
SPECIMEN_THRESHOLD = 0.05
"""The specimen region of a file object: pixels whose distance from the file's median value exceeds
this fraction of the largest distance (the flat padding around a reconstruction falls outside)."""


def _split_key(arg: str) -> tuple[str, str]:
    """``PATH[:KEY]`` → ``(PATH, KEY)``; a last ``:`` part with no ``/`` or ``.`` is the key."""
    head, sep, tail = arg.rpartition(":")
    if sep and head and tail and "/" not in tail and "." not in tail:
        return head, tail
    return arg, FILE_KEY


def _read_transmission(arg: str) -> np.ndarray:
    """The 2-D complex array of ``file:PATH[:KEY]`` (``.npz`` key, or a ``.npy`` array)."""
    from pathlib import Path

    path_text, key = _split_key(arg)
    path = Path(path_text)
    if not path.is_file():
        raise DataError(f"{path_text}: object file not found; set `simulate.object.kind` to file:PATH[:KEY] of an existing .npz/.npy")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as data:
                if key not in data.files:
                    raise DataError(f"{path_text}: no array '{key}' (has: {', '.join(data.files)}); "
                                    "name one in `simulate.object.kind` as file:PATH:KEY")
                array = data[key]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise DataError(f"{path_text}: cannot read the object ({exc}); use an .npz or .npy file") from exc
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or min(array.shape) < 2:
        raise DataError(f"{path_text}:{key}: expected a 2-D transmission, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path_text}:{key}: the transmission holds NaN or Inf")
    return array.astype(np.complex128)


def specimen_box(transmission: np.ndarray) -> tuple[int, int, int]:
    """``(row0, col0, side)`` of the square holding the specimen: the bounding box of the pixels
    farther than :data:`SPECIMEN_THRESHOLD` of the largest distance from the median value,
    squared about its centre (clipped to the array; the whole array if it is uniform)."""
    background = np.median(transmission.real) + 1j * np.median(transmission.imag)
    distance = np.abs(transmission - background)
    H, W = transmission.shape
    if float(distance.max()) <= 0:
        side = min(H, W)
        return (H - side) // 2, (W - side) // 2, side
    rows, cols = np.nonzero(distance > SPECIMEN_THRESHOLD * float(distance.max()))
    height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
    side = min(max(height, width), H, W)
    r0 = min(max(int(rows.min()) - (side - height) // 2, 0), H - side)
    c0 = min(max(int(cols.min()) - (side - width) // 2, 0), W - side)
    return r0, c0, side


def resample_square(image: np.ndarray, size: int) -> np.ndarray:
    """A square complex ``image`` resampled to ``size × size`` by cubic interpolation of its real and
    imaginary parts, pixel centres mapped to pixel centres (edges held)."""
    from scipy import ndimage

    side = image.shape[0]
    if side == size:
        return image.copy()
    coords = (np.arange(size) + 0.5) * (side / size) - 0.5
    rr, cc = np.meshgrid(coords, coords, indexing="ij")
    part = lambda a: ndimage.map_coordinates(a, [rr, cc], order=3, mode="nearest")  # noqa: E731
    return part(image.real) + 1j * part(image.imag)


def file_object(size: int, rng: np.random.Generator, config: ObjectConfig, arg: str | None = None) -> np.ndarray:
    """A complex transmission read from ``file:PATH[:KEY]`` (``.npz`` key, default ``object``, or
    ``.npy``): its specimen region (:func:`specimen_box`) is cut out and resampled to fill the
    ``size × size`` object (:func:`resample_square`). The amplitude and phase ranges of
    ``config`` do not apply: the file's values are the object.

    Returns
    -------
    (size, size) complex64
    """
    if not arg:
        raise DataError("object.kind: 'file:' needs a path, e.g. `simulate.object.kind` = file:specimen.npz:object")
    transmission = _read_transmission(arg)
    r0, c0, side = specimen_box(transmission)
    return resample_square(transmission[r0:r0 + side, c0:c0 + side], size).astype(np.complex64)


def make_object(pattern: np.ndarray, config: ObjectConfig) -> np.ndarray:
    """Map a pattern ``p ∈ [0, 1]`` to the complex object ``a(p)·exp(i·φ(p))``.

    Returns
    -------
    (S, S) complex64
    """
    p = np.clip(pattern, 0.0, 1.0)
    amplitude = config.amplitude_min + (config.amplitude_max - config.amplitude_min) * p
    phase = config.phase_min_rad + (config.phase_max_rad - config.phase_min_rad) * p
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)
