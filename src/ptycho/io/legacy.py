"""The earlier PtychoPINN NPZ layout (docs/formats.md#legacy-ptychopinn-npz), read and written.

Keys of that layout:

=================  =======================  =====================================================
key                shape                    meaning
=================  =======================  =====================================================
``diff3d`` or      (M, N, N) or (N, N, M)   diffraction **amplitudes** (√counts)
``diffraction``
``xcoords``,       (M,)                     probe-centre positions (object pixels)
``ycoords``
``xcoords_start``, (M,)                     optional; start coordinates (equal to the above for
``ycoords_start``                           ungrouped data)
``probeGuess``     (N, N) complex           probe
``objectGuess``    (H, W) complex           optional object
``scan_index``     (M,) int                 optional
=================  =======================  =====================================================

Conversion to the canonical gauge (docs/conventions.md#photon-gauge): counts = amplitude². Assumptions, stated because the
earlier files carry no units:

- positions are object pixels, but the earlier code puts a window's first pixel at ``x − N/2``
  (it pads the object by ``N // 2`` and translates it by ``−x`` before taking the first ``N``
  pixels, ``ptycho.raw_data.get_image_patches``), where ours puts it at ``x − (N−1)/2``: the same
  window is at ``x_ours = x_legacy − 1/2`` (:data:`POSITION_SHIFT_PX`, both axes). The reader
  subtracts the half pixel, the writer adds it back, so a round trip is exact and a legacy
  dataset is reconstructed, stitched and exported where its windows really were;
- the probe is already in √counts once the amplitudes are squared, so it is kept as stored;
- a ``(N, N, M)`` stack is recognised when its first two dimensions are equal and the last
  differs; a cube ``(N, N, N)`` is read as ``(M, N, N)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.errors import ConfigError, DataError
from ptycho.io.npz import NpzReader, save_npz_arrays

__all__ = ["LEGACY_FORMAT", "read_ptychopinn_npz", "write_ptychopinn_npz"]

LEGACY_FORMAT = "ptychopinn-npz"
POSITION_SHIFT_PX = -0.5
"""Canonical minus legacy position (both axes): legacy windows start at ``x − N/2``, ours at
``x − (N−1)/2``."""
DIFFRACTION_KEYS = ("diff3d", "diffraction")
#: Patterns converted at a time when writing amplitudes from a (possibly lazy) source.
CONVERT_CHUNK = 1024


def _patterns_first(amplitudes: np.ndarray, key: str, where: str) -> tuple[np.ndarray, str]:
    """Return the stack as ``(M, N, N)`` and the layout name it was stored in."""
    if amplitudes.ndim != 3:
        raise DataError(
            f"{where}: key '{key}' has shape {amplitudes.shape} ({amplitudes.ndim}-D); "
            "expected 3-D (M, N, N) or (N, N, M) amplitudes"
        )
    a, b, c = amplitudes.shape
    if a == b and c != a:
        return np.ascontiguousarray(np.moveaxis(amplitudes, 2, 0)), "(N, N, M)"
    return amplitudes, "(M, N, N)"


def read_ptychopinn_npz(path: str | os.PathLike[str]) -> Dataset:
    """Read an earlier-PtychoPINN NPZ and convert it to the canonical gauge.

    Returns
    -------
    Dataset
        diffraction ``(M, N, N)`` float32 counts (amplitudes squared), x/y float64 from
        ``xcoords``/``ycoords`` shifted by :data:`POSITION_SHIFT_PX`, probe complex64 from
        ``probeGuess`` (unchanged), object from ``objectGuess`` and scan_index when present.
        ``metadata`` records ``{"converted_from": "ptychopinn-npz", ...}`` with the source key,
        layout and position shift.

    Raises
    ------
    DataError
        Missing keys, wrong rank, negative or non-numeric amplitudes, unreadable file.
    """
    with NpzReader(path) as npz:
        where = npz.where
        key = next((k for k in DIFFRACTION_KEYS if k in npz), None)
        if key is None:
            raise DataError(
                f"{where}: missing key 'diff3d' (or 'diffraction'); the PtychoPINN layout needs "
                "diffraction amplitudes, 'xcoords', 'ycoords', 'probeGuess'"
            )
        amplitudes, layout = _patterns_first(npz.array(key, np.float32), key, where)
        # NaN makes min() NaN and skips this test; validation then reports the NaN itself
        lowest = amplitudes.min() if amplitudes.size else 0.0
        if lowest < 0:
            raise DataError(
                f"{where}: key '{key}' holds amplitudes (√counts) but has negative values "
                f"(min {lowest:g}); expected amplitudes ≥ 0"
            )
        counts = np.square(amplitudes, dtype=np.float32)
        metadata = {"converted_from": LEGACY_FORMAT, "legacy_key": key, "legacy_layout": layout,
                    "legacy_position_shift_px": POSITION_SHIFT_PX}
        return Dataset(
            diffraction=counts,
            x=npz.array("xcoords", np.float64) + POSITION_SHIFT_PX,
            y=npz.array("ycoords", np.float64) + POSITION_SHIFT_PX,
            probe=npz.array("probeGuess", np.complex64),
            object=npz.optional("objectGuess", np.complex64),
            scan_index=npz.optional("scan_index", np.int64),
            metadata=metadata,
            source=where,
        )


def write_ptychopinn_npz(path: str | os.PathLike[str], dataset: Dataset) -> Path:
    """Write ``dataset`` in the earlier PtychoPINN NPZ layout, atomically.

    ``diffraction`` holds amplitudes ``sqrt(counts)`` as float32 ``(M, N, N)``; ``xcoords``/
    ``ycoords`` and ``xcoords_start``/``ycoords_start`` hold the positions in the earlier
    convention (canonical minus :data:`POSITION_SHIFT_PX`; start and centre the same: the
    canonical dataset is ungrouped); ``probeGuess``, ``objectGuess`` (if present) and
    ``scan_index`` (if present) follow. Canonical metadata has no slot in this layout and is
    not written.

    Raises
    ------
    DataError
        If some counts are negative (they have no real amplitude).
    ConfigError
        A mixed-state probe: the layout holds one coherent probe (exit code 2).
    """
    if np.ndim(dataset.probe) == 3:
        raise ConfigError(f"{path}: the PtychoPINN NPZ layout holds one coherent probe but this dataset's probe has "
                          f"{len(dataset.probe)} incoherent modes; write the canonical .h5 or .npz instead")
    dropped = [key for key in ("mask", "probe_modes") if getattr(dataset, key) is not None]
    if dropped:
        warnings.warn(f"{path}: the PtychoPINN NPZ layout has no slot for {' and '.join(dropped)}; not written "
                      "(use the canonical .h5 or .npz to keep them)", UserWarning, stacklevel=2)
    M = dataset.n_patterns
    amplitudes = np.empty((M, dataset.N, dataset.N), dtype=np.float32)
    for start in range(0, M, CONVERT_CHUNK):
        block = dataset.read_patterns(slice(start, start + CONVERT_CHUNK))
        if block.size and block.min() < 0:
            raise DataError(
                f"{dataset.source or 'dataset'}: negative counts (min {block.min():g}) cannot be "
                "converted to amplitudes; expected counts ≥ 0"
            )
        np.sqrt(block, out=amplitudes[start : start + block.shape[0]])
    x = np.asarray(dataset.x, dtype=np.float64) - POSITION_SHIFT_PX  # the earlier convention
    y = np.asarray(dataset.y, dtype=np.float64) - POSITION_SHIFT_PX
    arrays = {
        "diffraction": amplitudes,
        "xcoords": x,
        "ycoords": y,
        "xcoords_start": x.copy(),
        "ycoords_start": y.copy(),
        "probeGuess": np.asarray(dataset.probe, dtype=np.complex64),
    }
    if dataset.object is not None:
        arrays["objectGuess"] = np.asarray(dataset.object, dtype=np.complex64)
    if dataset.scan_index is not None:
        arrays["scan_index"] = np.asarray(dataset.scan_index, dtype=np.int64)
    return save_npz_arrays(path, arrays)
