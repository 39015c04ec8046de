"""Batches of groups streamed from a dataset (HDF5 read per batch, so memory does not grow with
the dataset), as NumPy arrays or a prefetching ``tf.data`` pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.data.grouping import Groups
from ptycho.physics.noise import seed_stream

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


def read_group_batch(dataset: Dataset, groups: Groups, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``(B, N, N, C)`` float32 and member offsets ``(B, C)`` float64 for group ``rows``."""
    index = groups.index[rows]
    B, C = index.shape
    patterns = dataset.read_patterns(index.ravel()).reshape(B, C, dataset.N, dataset.N)
    return np.ascontiguousarray(patterns.transpose(0, 2, 3, 1)), groups.offset_x[rows], groups.offset_y[rows]


CountsTransform = Callable[[int, np.ndarray], np.ndarray]


def iter_group_batches(
    dataset: Dataset, groups: Groups, rows_list: list[np.ndarray], transform: CountsTransform | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batches in ``rows_list`` order; ``transform(step, counts) -> counts`` alters each batch's counts."""
    for step, rows in enumerate(rows_list):
        counts, ox, oy = read_group_batch(dataset, groups, rows)
        yield (transform(step, counts) if transform else counts), ox, oy


def tf_group_batches(
    dataset: Dataset, groups: Groups, rows_list: list[np.ndarray], transform: CountsTransform | None = None
) -> Any:
    """A prefetching ``tf.data.Dataset`` of ``(counts, offset_x, offset_y)`` batches: HDF5 reads of
    the next batches overlap the current training step, and only ``PREFETCH_BATCHES`` are held."""
    from ptycho._tf import tf

    tf_ = tf()
    N, C = dataset.N, groups.C
    signature = (
        tf_.TensorSpec((None, N, N, C), tf_.float32),
        tf_.TensorSpec((None, C), tf_.float64),
        tf_.TensorSpec((None, C), tf_.float64),
    )
    return tf_.data.Dataset.from_generator(
        lambda: iter_group_batches(dataset, groups, rows_list, transform), output_signature=signature
    ).prefetch(PREFETCH_BATCHES)
