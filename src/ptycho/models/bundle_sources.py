"""What a bundle records of the probe and the detector mask its model was trained with (format 7
on; docs/formats.md#model-bundles), so ``infer`` can apply them to the next scan.

A model trained with a probe of its own (read from a file, or refined in training) has learnt with
that probe, and the next scan's dataset usually holds the same stale guess the training scan did:
``infer`` then makes its input with the bundle's probe. A model trained with the dataset's own probe
goes on using the new dataset's (its own measurement of the probe). The mask is a property of the
detector, which usually measures the next scan too: a scan without a mask of its own gets the
bundle's (:func:`ptycho.workflows.infer_inputs.choose_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.errors import DataError

MASK_FILE = "mask.npy"
"""The ``(N, N)`` bool valid-pixel mask training excluded (only when training had one)."""
PROBE_SOURCES = ("dataset", "file", "refined")
MASK_SOURCES = ("none", "dataset", "file")


@dataclass(frozen=True)
class TrainingProbe:
    """Where the bundle's probe (``probe.npy``) came from.

    Attributes
    ----------
    source : {"dataset", "file", "refined"}
        The training dataset's own probe, the probe of ``train.probe_file`` (used as given), or a
        probe refined in training (``model.probe_trainable``), started from ``file`` when set.
    file : str or None
        ``train.probe_file`` as given, or None.
    """

    source: str
    file: str | None = None

    def __post_init__(self) -> None:
        if self.source not in PROBE_SOURCES:
            raise ValueError(f"probe source {self.source!r}; expected one of {PROBE_SOURCES}")

    @property
    def replaces_datasets(self) -> bool:
        """True when training did not use its dataset's own probe: ``infer`` uses the bundle's then."""
        return self.source != "dataset"

    def describe(self) -> str:
        """How a run reports it: ``"file guess.npz"``, ``"refined in training (from file …)"`` …"""
        start = f"file {self.file}" if self.file else "the dataset's probe"
        return {"dataset": "the training dataset's probe", "file": f"file {self.file}",
                "refined": f"refined in training (from {start})"}[self.source]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file}


def training_probe(trainable: bool, probe_file: str | None) -> TrainingProbe:
    """The record of a training run's probe: refined when ``trainable``, else the file's or the dataset's."""
    return TrainingProbe("refined" if trainable else ("file" if probe_file else "dataset"), probe_file)


@dataclass(frozen=True, eq=False)
class TrainingMask:
    """The detector mask training excluded from its loss.

    Attributes
    ----------
    source : {"none", "dataset", "file"}
        No mask, the training dataset's ``mask``, or the file ``train.mask`` (``file``).
    file : str or None
    valid : (N, N) bool or None
        True = measured pixel; None for ``"none"``.
    """

    source: str = "none"
    file: str | None = None
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.source not in MASK_SOURCES or (self.source == "none") != (self.valid is None):
            raise ValueError(f"mask source {self.source!r} with {'no' if self.valid is None else 'a'} mask")

    def describe(self) -> str:
        return {"none": "none", "dataset": "the training dataset's mask", "file": f"file {self.file}"}[self.source]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file,
                "valid_pixels": None if self.valid is None else int(np.count_nonzero(self.valid))}


def training_mask(mask_file: str | Path | None, mask: np.ndarray | None) -> TrainingMask:
    """The record of a training run's mask: ``mask_file``'s (``train.mask``), the dataset's, or none."""
    if mask is None:
        return TrainingMask()
    return TrainingMask("file" if mask_file else "dataset", None if mask_file is None else str(mask_file),
                        np.asarray(mask, bool))


def probe_from_config(config: dict[str, Any], where: Path) -> TrainingProbe:
    """The ``probe`` record of an (upgraded) ``config.json``; DataError if it is not one."""
    record = config.get("probe")
    try:
        return TrainingProbe(str(record["source"]), None if record.get("file") is None else str(record["file"]))
    except (KeyError, TypeError, AttributeError, ValueError):
        raise DataError(f"{where}: 'probe' is {record!r}; expected {{'source': one of {', '.join(PROBE_SOURCES)}, "
                        "'file': ...}; the file was edited or is corrupt") from None


def mask_from_config(config: dict[str, Any], mask_file: Path, N: int, where: Path) -> TrainingMask:
    """The ``mask`` record of an (upgraded) ``config.json`` with the array of ``mask_file``
    (read only when the record names a mask), checked to be ``(N, N)`` bool with a valid pixel.

    Raises
    ------
    DataError
        An invalid record, a missing or unreadable ``mask.npy``, or a mask of another shape.
    """
    record = config.get("mask")
    try:
        source, file = str(record["source"]), record.get("file")
    except (KeyError, TypeError, AttributeError):
        source = ""
    if source not in MASK_SOURCES:
        raise DataError(f"{where}: 'mask' is {record!r}; expected {{'source': one of {', '.join(MASK_SOURCES)}, "
                        "'file': ...}; the file was edited or is corrupt") from None
    if source == "none":
        return TrainingMask()
    if not mask_file.is_file():
        raise DataError(f"{mask_file}: missing, but config.json records a training mask; copy the whole bundle folder")
    try:
        valid = np.load(mask_file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{mask_file}: cannot read the training mask ({type(exc).__name__}); the bundle is corrupt") from None
    if not isinstance(valid, np.ndarray) or valid.dtype != bool or valid.shape != (N, N) or not valid.any():
        raise DataError(f"{mask_file}: expected a ({N}, {N}) bool mask with a valid pixel, as the model's N = {N}; "
                        f"found {getattr(valid, 'dtype', type(valid).__name__)} {getattr(valid, 'shape', '')}")
    return TrainingMask(source, None if file is None else str(file), valid)
