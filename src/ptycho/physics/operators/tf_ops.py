"""The TensorFlow backend of :mod:`ptycho.physics.operators`: differentiable, batched over images.

Used where gradients or the graph are needed: ``simulate`` (:func:`simulate_patterns`) and the
PINN's physics layers and group estimate (:mod:`ptycho.models.physics`,
:mod:`ptycho.models.features`). Gradients flow to the images and the patches; positions enter
only through the fractional part of :func:`~ptycho.physics.operators.geometry.split_start`, the
place a position gradient (position refinement) would come from.

Windows are expected inside the images (bilinear block included); block indices outside are
clamped to the edge rather than checked, since a graph cannot raise cheaply. Callers size their
canvases so that this never happens (``ptycho.models.physics.canvas_size``).

Shapes: ``B`` images (object or per-group canvases), ``K`` windows per image, ``N`` window side.
"""

from __future__ import annotations

from typing import Any

from ptycho._tf import tf as _tf
from ptycho.physics.operators.geometry import check_probe_shape, split_start, window_start


def _window_geometry(x: Any, y: Any, N: int, H: int, W: int) -> tuple[Any, Any, Any]:
    """Flat gather indices ``(B, K, N+1, N+1)`` and fractional offsets ``(B, K)`` (fy, fx)."""
    tf = _tf()
    ix, fx = split_start(window_start(tf.cast(x, tf.float64), N), tf.floor)
    iy, fy = split_start(window_start(tf.cast(y, tf.float64), N), tf.floor)
    fx, fy = tf.cast(fx, tf.float32), tf.cast(fy, tf.float32)
    offsets = tf.range(N + 1, dtype=tf.int32)
    rows = tf.clip_by_value(tf.cast(iy, tf.int32)[..., None] + offsets, 0, H - 1)  # (B, K, N+1)
    cols = tf.clip_by_value(tf.cast(ix, tf.int32)[..., None] + offsets, 0, W - 1)
    batch = tf.range(tf.shape(rows)[0], dtype=tf.int32)[:, None, None, None]
    flat = batch * (H * W) + rows[..., :, None] * W + cols[..., None, :]
    return flat, fy, fx


def _bilinear_weights(fy: Any, fx: Any) -> tuple[Any, Any, Any, Any]:
    tf = _tf()
    fy, fx = fy[..., None, None], fx[..., None, None]
    w = ((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx)
    return tuple(tf.complex(v, tf.zeros_like(v)) for v in w)  # type: ignore[return-value]


def extract_patches(images: Any, x: Any, y: Any, N: int) -> Any:
    """Read ``N×N`` windows centred at ``(x, y)`` from each image.

    Parameters
    ----------
    images : (B, H, W) complex64
    x, y : (B, K) float
        Window centres in pixels of ``images``.
    N : int

    Returns
    -------
    (B, K, N, N) complex64
    """
    tf = _tf()
    images = tf.convert_to_tensor(images)
    H, W = int(images.shape[-2]), int(images.shape[-1])
    flat, fy, fx = _window_geometry(x, y, N, H, W)
    block = tf.gather(tf.reshape(images, [-1]), flat)  # (B, K, N+1, N+1)
    w00, w01, w10, w11 = _bilinear_weights(fy, fx)
    return (
        w00 * block[..., :N, :N]
        + w01 * block[..., :N, 1:]
        + w10 * block[..., 1:, :N]
        + w11 * block[..., 1:, 1:]
    )


def place_patches(patches: Any, x: Any, y: Any, H: int, W: int) -> Any:
    """Adjoint of :func:`extract_patches`: add each window into an ``H×W`` canvas per image.

    Parameters
    ----------
    patches : (B, K, N, N) complex64
    x, y : (B, K) float
    H, W : int

    Returns
    -------
    (B, H, W) complex64, the sum of every window's bilinear footprint.
    """
    tf = _tf()
    patches = tf.convert_to_tensor(patches)
    N = int(patches.shape[-1])
    flat, fy, fx = _window_geometry(x, y, N, H, W)
    w00, w01, w10, w11 = _bilinear_weights(fy, fx)
    pad = lambda p, top, left: tf.pad(p, [[0, 0]] * (p.shape.rank - 2) + [[top, 1 - top], [left, 1 - left]])  # noqa: E731
    spread = (
        w00 * pad(patches, 0, 0)
        + w01 * pad(patches, 0, 1)
        + w10 * pad(patches, 1, 0)
        + w11 * pad(patches, 1, 1)
    )  # (B, K, N+1, N+1)
    n_images = tf.shape(patches)[0]
    size = n_images * H * W
    index = tf.reshape(flat, [-1, 1])
    real = tf.scatter_nd(index, tf.reshape(tf.math.real(spread), [-1]), [size])
    imag = tf.scatter_nd(index, tf.reshape(tf.math.imag(spread), [-1]), [size])
    return tf.reshape(tf.complex(real, imag), [n_images, H, W])


def propagate(exit_waves: Any) -> Any:
    """Far-field wave: unitary 2-D DFT, DC-centred (fftshifted). ``(..., N, N)`` complex64."""
    tf = _tf()
    N = int(exit_waves.shape[-1])
    return tf.signal.fftshift(tf.signal.fft2d(exit_waves) / tf.complex(float(N), 0.0), axes=(-2, -1))


def back_propagate(farfield: Any) -> Any:
    """Inverse of :func:`propagate`: DC-centred far-field wave → exit wave."""
    tf = _tf()
    N = int(farfield.shape[-1])
    return tf.signal.ifft2d(tf.signal.ifftshift(farfield, axes=(-2, -1))) * tf.complex(float(N), 0.0)


def farfield_intensity(exit_waves: Any) -> Any:
    """``|F(ψ)|²`` with the unitary 2-D DFT, DC-centred (fftshifted) like a detector image.

    Parameters
    ----------
    exit_waves : (..., N, N) complex64

    Returns
    -------
    (..., N, N) float32; ``Σ`` over the last two axes equals ``Σ|ψ|²`` (Parseval).
    """
    tf = _tf()
    spectrum = propagate(exit_waves)
    return tf.math.real(spectrum * tf.math.conj(spectrum))


def diffraction_intensity(object_patches: Any, probe: Any) -> Any:
    """The forward model on object windows: illuminate by ``probe``, propagate, square; a
    mixed-state probe's modes add incoherently (:mod:`ptycho.physics.operators`).

    Parameters
    ----------
    object_patches : (..., N, N) complex64
    probe : (N, N) or (K, N, N) complex64, √counts

    Returns
    -------
    (..., N, N) float32 expected counts.
    """
    tf = _tf()
    if check_probe_shape(tuple(probe.shape)) == 0:
        return farfield_intensity(object_patches * probe)
    return tf.reduce_sum(farfield_intensity(object_patches[..., None, :, :] * probe), axis=-3)


def simulate_patterns(obj: Any, probe: Any, x: Any, y: Any) -> Any:
    """Expected counts for windows of ``obj`` at positions ``(x, y)`` (what ``simulate`` records).

    Parameters
    ----------
    obj : (H, W) complex64
    probe : (N, N) or (K, N, N) complex64
    x, y : (M,) float64

    Returns
    -------
    (M, N, N) float32
    """
    tf = _tf()
    N = int(probe.shape[-1])
    patches = extract_patches(tf.convert_to_tensor(obj)[None], x[None], y[None], N)[0]
    return diffraction_intensity(patches, tf.convert_to_tensor(probe))
