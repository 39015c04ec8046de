"""The in-memory view of a ptychography dataset (docs/formats.md#datasets).

Diffraction may be an ``np.ndarray`` or a lazily read array (an open ``h5py.Dataset``), so a
dataset larger than memory can be streamed in batches with :meth:`Dataset.read_patterns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np


class PatternArray(Protocol):
    """What :class:`Dataset` needs of its diffraction store: a shape and slicing."""

    shape: tuple[int, ...]

    def __getitem__(self, key: Any) -> np.ndarray: ...


@dataclass(eq=False)
class Dataset:
    """A ptychography dataset in the canonical gauge.

    Attributes
    ----------
    diffraction : (M, N, N) float32 array-like
        Intensities in photon counts, DC-centred. May be lazy (h5py).
    x, y : (M,) float64
        Probe-centre positions in object pixels (column, row).
    probe : (N, N) or (K, N, N) complex64
        Probe in √counts: ``Σ|P|²`` (over every mode) is the expected photons per exposure for a
        unit object. ``(K, N, N)`` is a mixed state of ``K`` incoherent modes whose intensities
        add (docs/formats.md#datasets).
    object : (H, W) complex64 or None
        Ground truth, when known.
    scan_index : (M,) int64 or None
    mask : (N, N) bool or None
        Detector pixels that were measured (True = valid). Invalid pixels (beamstop, gaps, dead,
        hot or saturated pixels) are excluded from every loss and modulus update; ``None`` means
        all pixels are valid. Same layout as the patterns (DC-centred).
    probe_modes : (K, N, N) complex64 or None
        Written by imports that predate mixed-state probes: every mode of a multi-mode probe whose
        ``probe`` is the dominant mode scaled to the modes' power. Kept as read; ``probe`` itself
        holds the modes of a mixed state now. ``None`` otherwise.
    metadata : dict
        Config that produced it, seeds, versions, physical quantities if known.
    source : str or None
        Path the dataset was read from.
    """

    diffraction: PatternArray
    x: np.ndarray
    y: np.ndarray
    probe: np.ndarray
    object: np.ndarray | None = None
    scan_index: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None
    probe_modes: np.ndarray | None = None
    source: str | None = None
    _closer: Any = field(default=None, repr=False, compare=False)
    _closed: bool = field(default=False, repr=False, compare=False)

    @property
    def n_patterns(self) -> int:
        return int(self._open_patterns().shape[0])

    @property
    def N(self) -> int:
        return int(self._open_patterns().shape[-1])

    def _open_patterns(self) -> PatternArray:
        """The pattern array, refusing a closed file (h5py would still answer from its cache,
        hiding a read after close that fails for any other backend)."""
        if self._closed:
            raise ValueError(f"{self.source or 'dataset'}: the file is closed; read what you need inside its `with` block")
        return self.diffraction

    @property
    def positions(self) -> np.ndarray:
        """(M, 2) float64 array of ``(x, y)``."""
        return np.stack([self.x, self.y], axis=1)

    @property
    def valid_pixels(self) -> np.ndarray:
        """``(N, N)`` bool: the mask, or all True when the dataset has none."""
        if self.mask is None:
            return np.ones((self.N, self.N), dtype=bool)
        return np.asarray(self.mask, dtype=bool)

    def read_patterns(self, index: slice | np.ndarray | None = None) -> np.ndarray:
        """Read patterns into memory as float32.

        ``index`` may be a slice or a 1-D integer array in any order (h5py needs sorted,
        unique indices; this handles the reordering). Always returns a new array.

        Raises
        ------
        IndexError
            An integer index outside ``0 … n_patterns − 1`` (indices are never wrapped).
        ValueError
            The file behind the dataset was closed.
        """
        patterns = self._open_patterns()
        if index is None:
            index = slice(None)
        if isinstance(index, slice):
            return np.array(patterns[index], dtype=np.float32)
        index = np.asarray(index, dtype=np.int64).ravel()
        M = int(patterns.shape[0])
        if index.size and (index.min() < 0 or index.max() >= M):
            bad = index[(index < 0) | (index >= M)][0]
            raise IndexError(f"{self.source or 'dataset'}: pattern index {bad} is out of range for "
                             f"{M} patterns (0 … {M - 1})")
        if isinstance(self.diffraction, np.ndarray):
            return self.diffraction[index].astype(np.float32, copy=False)
        unique, inverse = np.unique(index, return_inverse=True)
        block = np.asarray(self.diffraction[unique], dtype=np.float32)
        return block[inverse]

    def subset(self, index: np.ndarray) -> "Dataset":
        """A new in-memory dataset holding the patterns at ``index``, in the order given."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            diffraction=self.read_patterns(index),
            x=self.x[index],
            y=self.y[index],
            scan_index=None if self.scan_index is None else self.scan_index[index],
            _closer=None,
        )

    def fingerprint(self) -> str:
        """A SHA-256 over sizes, positions, probe and a sample of patterns (cheap for any size)."""
        import hashlib

        digest = hashlib.sha256()
        digest.update(np.asarray(self.diffraction.shape, dtype=np.int64).tobytes())
        for arr in (self.x, self.y, self.probe):
            digest.update(np.ascontiguousarray(arr).tobytes())
        if self.mask is not None:  # only then: unmasked datasets keep their earlier fingerprints
            digest.update(np.ascontiguousarray(self.mask, dtype=bool).tobytes())
        sample = np.unique(np.linspace(0, self.n_patterns - 1, min(self.n_patterns, 16)).astype(np.int64))
        digest.update(self.read_patterns(sample).tobytes())
        return digest.hexdigest()

    def object_fingerprint(self) -> str | None:
        """SHA-256 of the ground-truth object (None without one): what a reconstruction records,
        so that it is scored against the object it was reconstructed from."""
        return None if self.object is None else object_fingerprint(self.object)

    def close(self) -> None:
        """Release the file behind a lazily read dataset (no-op for in-memory data)."""
        if self._closer is not None:
            self._closer()
            self._closer = None
            self._closed = True

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def object_fingerprint(obj: np.ndarray) -> str:
    """SHA-256 over the shape and complex64 values of an ``(H, W)`` object."""
    import hashlib

    arr = np.ascontiguousarray(obj, dtype=np.complex64)
    return hashlib.sha256(np.asarray(arr.shape, np.int64).tobytes() + arr.tobytes()).hexdigest()
