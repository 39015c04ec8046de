"""Batches of groups streamed from a dataset (HDF5 read per batch, so memory does not grow with
the dataset), as NumPy arrays or a prefetching ``tf.data`` pipeline.

A batch is ``(counts, offset_x, offset_y, estimate)``: counts ``(B, N, N, C)`` float32, member
offsets ``(B, C)`` float64, and the members' windows of the global estimate as ``(B, N, N, 2C)``
float32 channels (real parts, then imaginary parts), or ``(B, N, N, 0)`` without one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups
from ptycho.seeding import seed_stream

if TYPE_CHECKING:
    from ptycho.iterative.streaming import GlobalEstimate

PREFETCH_BATCHES = 2


def batch_rows(
    n_groups: int, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0, drop_remainder: bool = False
) -> list[np.ndarray]:
    """Group rows per batch; shuffled per epoch from ``(seed, epoch)`` when asked."""
    order = np.arange(n_groups)
    if shuffle:
        order = seed_stream(seed, "shuffle", epoch).permutation(n_groups)
    stop = (n_groups // batch_size) * batch_size if drop_remainder else n_groups
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


Batch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def estimate_channels(estimate: GlobalEstimate | None, index: np.ndarray, N: int) -> np.ndarray:
    """The windows of positions ``index`` ``(B, C)`` as ``(B, N, N, 2C)`` float32 channels (real
    parts, then imaginary parts); ``(B, N, N, 0)`` without an estimate."""
    if estimate is None:
        return np.zeros((index.shape[0], N, N, 0), np.float32)
    windows = estimate.patches(index).transpose(0, 2, 3, 1)  # (B, N, N, C)
    return np.ascontiguousarray(np.concatenate([windows.real, windows.imag], axis=-1), dtype=np.float32)


def read_group_batch(dataset: Dataset, groups: Groups, rows: np.ndarray, estimate: GlobalEstimate | None = None) -> Batch:
    """The batch (module docstring) of group ``rows``. Pixels outside the dataset's ``mask`` read 0
    counts, so nothing measured there (a beamstop, a hot pixel) reaches the network or the loss."""
    index = groups.index[rows]
    B, C = index.shape
    patterns = dataset.read_patterns(index.ravel()).reshape(B, C, dataset.N, dataset.N)
    if dataset.mask is not None:
        patterns = np.where(dataset.valid_pixels, patterns, np.float32(0))
    return (np.ascontiguousarray(patterns.transpose(0, 2, 3, 1)), groups.offset_x[rows], groups.offset_y[rows],
            estimate_channels(estimate, index, dataset.N))


def iter_group_batches(
    dataset: Dataset, groups: Groups, rows_list: list[np.ndarray], estimate: GlobalEstimate | None = None,
) -> Iterator[Batch]:
    """The batches of ``rows_list``, in its order."""
    for rows in rows_list:
        yield read_group_batch(dataset, groups, rows, estimate)


def tf_group_batches(
    dataset: Dataset, groups: Groups, rows_list: list[np.ndarray], estimate: GlobalEstimate | None = None,
) -> Any:
    """A prefetching ``tf.data.Dataset`` of batches (module docstring): HDF5 reads of the next
    batches overlap the current training step, and only ``PREFETCH_BATCHES`` are held."""
    from ptycho._tf import tf

    tf_ = tf()
    N, C = dataset.N, groups.C
    signature = (
        tf_.TensorSpec((None, N, N, C), tf_.float32),
        tf_.TensorSpec((None, C), tf_.float64),
        tf_.TensorSpec((None, C), tf_.float64),
        tf_.TensorSpec((None, N, N, 0 if estimate is None else 2 * C), tf_.float32),
    )
    return tf_.data.Dataset.from_generator(
        lambda: iter_group_batches(dataset, groups, rows_list, estimate), output_signature=signature
    ).prefetch(PREFETCH_BATCHES)
