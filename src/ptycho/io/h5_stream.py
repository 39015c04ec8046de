"""Writing an HDF5 file block by block, atomically: the base of every streamed HDF5 writer
(datasets :class:`ptycho.io.h5.H5DatasetWriter`, patches :class:`ptycho.io.patches.PatchesWriter`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.io.atomic import discard_temp, temp_path_for

__all__ = ["StreamingH5Writer"]


class StreamingH5Writer:
    """Base of the writers that fill an HDF5 file block by block and rename it into place.

    Data go to a temporary file beside ``path``. On clean exit of the ``with`` block the file is
    renamed into place; on an exception, or if some item was never written (then
    ``RuntimeError``), the temporary file is deleted and no file appears. Subclasses create their
    datasets in :meth:`_create_layout`, mark what they wrote in ``self._written`` (one flag per
    item) and name the items in ``_unit`` for the error message.
    """

    _unit = "items"

    def __init__(self, path: str | os.PathLike[str], n_items: int) -> None:
        self.path = Path(path)
        self._written = np.zeros(int(n_items), dtype=bool)
        self._tmp: Path | None = None
        self._file: h5py.File | None = None

    def _create_layout(self, f: h5py.File) -> None:
        raise NotImplementedError

    def _forget_handles(self) -> None:
        """Drop references to datasets of the closed file (subclasses that keep some)."""

    def __enter__(self) -> Any:
        self._tmp = temp_path_for(self.path)
        try:
            self._file = h5py.File(self._tmp, "w")
            self._create_layout(self._file)
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._abort()
            return
        if not self._written.all():
            missing = np.flatnonzero(~self._written)
            self._abort()
            raise RuntimeError(
                f"{self.path}: {missing.size} of {self._written.size} {self._unit} were never written "
                f"(first missing: {int(missing[0])}); no file was written"
            )
        try:
            self._file.close()  # type: ignore[union-attr]
            os.replace(self._tmp, self.path)  # type: ignore[arg-type]
        except BaseException:
            self._abort()
            raise
        finally:
            self._file = None
            self._forget_handles()

    def _abort(self) -> None:
        """Close and delete the temporary file (after an error or an incomplete write)."""
        if self._file is not None:
            with contextlib.suppress(Exception):  # already broken: the file is deleted anyway
                self._file.close()
        self._file = None
        self._forget_handles()
        if self._tmp is not None:
            discard_temp(self._tmp)
