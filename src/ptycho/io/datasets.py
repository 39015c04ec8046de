"""Format dispatch for datasets and probes: the one entry point commands use (docs/formats.md#datasets).

``load_dataset`` picks the reader from the suffix (and, for NPZ, from the keys), then validates;
``save_dataset`` picks the writer from ``format`` or the suffix; ``load_probe`` serves
``probe.kind = "file:PATH"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ptycho.data.coercion import coerce_array, coerce_mask, probe_modes_from
from ptycho.data.dataset import Dataset
from ptycho.data.validation import validate_dataset
from ptycho.errors import ConfigError, DataError
from ptycho.io.atomic import one_line
from ptycho.io.h5 import H5_SUFFIXES, read_h5, write_h5
from ptycho.io.legacy import LEGACY_FORMAT, read_ptychopinn_npz, write_ptychopinn_npz
from ptycho.io.npz import NpzReader, read_npz, write_npz

__all__ = ["SAVE_FORMATS", "check_mask_fits", "dataset_inputs", "load_dataset", "load_mask", "load_probe", "save_dataset"]

NPZ_SUFFIXES = (".npz",)
SAVE_FORMATS = ("h5", "npz", LEGACY_FORMAT)
_SUPPORTED = "canonical HDF5 (.h5, .hdf5), canonical NPZ (.npz), PtychoPINN NPZ (.npz)"
_CANONICAL_NPZ_KEYS = {"probe", "diffraction", "x"}
_LEGACY_NPZ_KEYS = {"xcoords", "diff3d", "probeGuess"}


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: file not found")
    if not p.is_file():
        raise DataError(f"{path}: is a directory, expected a dataset file")
    return p


def _unknown_suffix(path: str | os.PathLike[str]) -> DataError:
    suffix = Path(path).suffix or "(none)"
    return DataError(f"{path}: unknown dataset format for suffix {suffix}; supported: {_SUPPORTED}")


def _npz_layout(path: Path) -> str:
    """``"canonical"`` or ``"legacy"`` from the keys of an NPZ file."""
    with NpzReader(path) as npz:
        keys = set(npz.keys)
    if _CANONICAL_NPZ_KEYS <= keys:
        return "canonical"
    if keys & _LEGACY_NPZ_KEYS:
        return "legacy"
    if keys & {"diffraction", "x", "y", "probe"}:
        return "canonical"  # partial canonical file: the reader names the missing key
    raise DataError(
        f"{path}: not a recognised NPZ dataset (keys: {', '.join(sorted(keys)) or 'none'}); "
        "expected canonical keys diffraction, x, y, probe or the PtychoPINN keys "
        "diff3d/diffraction, xcoords, ycoords, probeGuess; convert other layouts (tike, CXI) with `ptycho import`"
    )


def load_dataset(
    path: str | os.PathLike[str],
    *,
    validate: bool = True,
    check_bounds: str = "warn",
    diffraction: str | os.PathLike[str] | None = None,
    mask: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a dataset in any supported format, converted to the canonical gauge.

    Parameters
    ----------
    path : str or path-like
        ``.h5``/``.hdf5`` (canonical HDF5, diffraction read lazily) or ``.npz`` (canonical, or
        the earlier PtychoPINN layout, told apart by their keys); a Ptychodus product
        (``.h5``/``.npz``, told apart by its keys) with its diffraction patterns; or a Ptychodus
        workflow directory (``product.h5`` + ``diffraction.h5``).
    validate : bool
        Run :func:`~ptycho.data.validation.validate_dataset` (default).
    check_bounds : {"warn", "error", "off"}
        Policy for probe windows reaching outside the object (see ``validate_dataset``).
    diffraction : str or path-like, optional
        For a Ptychodus product: its diffraction file (default: ``diffraction.h5`` beside it).
    mask : str or path-like, optional
        A valid-pixel mask file (:func:`load_mask`) that replaces the dataset's own ``mask``.

    Returns
    -------
    Dataset
        Close it (``ds.close()`` or ``with``) to release an HDF5 file.

    Raises
    ------
    DataError
        Missing file, unknown suffix, unreadable or invalid data (exit code 3).
    """
    from ptycho.io.ptychodus import (
        PRODUCT_FILE,
        is_ptychodus_product,
        read_ptychodus_dataset,
    )

    if Path(path).is_dir() and (Path(path) / PRODUCT_FILE).is_file():  # a Ptychodus workflow directory
        path = Path(path) / PRODUCT_FILE
    p = _existing_file(path)
    suffix = p.suffix.lower()
    if suffix in (*H5_SUFFIXES, *NPZ_SUFFIXES) and is_ptychodus_product(p):
        ds = read_ptychodus_dataset(p, diffraction)
    elif suffix in H5_SUFFIXES:
        ds = read_h5(path)
    elif suffix in NPZ_SUFFIXES:
        ds = read_npz(path) if _npz_layout(p) == "canonical" else read_ptychopinn_npz(path)
    else:
        raise _unknown_suffix(path)
    if mask is not None:
        try:
            ds.mask = check_mask_fits(load_mask(mask), ds.N, mask_where=str(mask), data_where=str(path))
        except BaseException:
            ds.close()
            raise
    if validate:
        try:
            validate_dataset(ds, where=str(path), check_bounds=check_bounds)
        except BaseException:
            ds.close()
            raise
    return ds


def dataset_inputs(path: str | os.PathLike[str]) -> dict[str, Path]:
    """The files reading the dataset at ``path`` opens, by role: the dataset itself and, for a
    Ptychodus product (or workflow directory), its diffraction file (outputs must not be these)."""
    from ptycho.io.ptychodus import DIFFRACTION_FILE, PRODUCT_FILE, is_ptychodus_product

    p = Path(path)
    if p.is_dir() and (p / PRODUCT_FILE).is_file():
        p = p / PRODUCT_FILE
    inputs = {"dataset": p}
    diffraction = p.with_name(DIFFRACTION_FILE)
    if p.is_file() and diffraction.is_file() and p.suffix.lower() in (*H5_SUFFIXES, *NPZ_SUFFIXES) \
            and is_ptychodus_product(p):
        inputs["dataset's diffraction file"] = diffraction
    return inputs


def output_format(path: Path, fmt: str | None) -> str:
    """The dataset format to write: ``fmt`` checked against the suffix, or chosen from it."""
    suffix = path.suffix.lower()
    if fmt is None:
        if suffix in H5_SUFFIXES:
            return "h5"
        if suffix in NPZ_SUFFIXES:
            return "npz"
        raise ConfigError(
            f"{path}: cannot tell the output format from suffix {suffix or '(none)'}; use .h5, "
            f".hdf5 or .npz, or give format as one of {', '.join(SAVE_FORMATS)}"
        )
    if fmt not in SAVE_FORMATS:
        raise ConfigError(
            f"unknown dataset format {fmt!r}; expected one of {', '.join(SAVE_FORMATS)}"
        )
    wanted = H5_SUFFIXES if fmt == "h5" else NPZ_SUFFIXES
    if suffix not in wanted:
        ending = " or ".join(wanted)
        raise ConfigError(f"{path}: format {fmt!r} needs a file name ending in {ending}")
    return fmt


def save_dataset(
    path: str | os.PathLike[str], dataset: Dataset, *, format: str | None = None  # noqa: A002
) -> Path:
    """Write ``dataset`` atomically as ``"h5"``, ``"npz"`` or ``"ptychopinn-npz"``.

    ``format=None`` chooses from the suffix (``.h5``/``.hdf5`` → h5, ``.npz`` → npz).
    Returns the final path.

    Raises
    ------
    ConfigError
        Unknown format, or a format that does not match the suffix (exit code 2).
    """
    p = Path(path)
    fmt = output_format(p, format)
    if fmt == "h5":
        return write_h5(p, dataset)
    if fmt == "npz":
        return write_npz(p, dataset)
    return write_ptychopinn_npz(p, dataset)


def _probe_from_h5(path: Path) -> np.ndarray:
    try:
        with h5py.File(path, "r") as f:
            if "probe" not in f or not isinstance(f["probe"], h5py.Dataset):
                raise DataError(
                    f"{path}: no dataset 'probe' at the root; expected a ptycho dataset or a "
                    "Ptychodus product"
                )
            return np.asarray(f["probe"][()])
    except OSError as exc:
        reason = one_line(exc)
        raise DataError(f"{path}: cannot read as HDF5; corrupt or not HDF5 ({reason})") from None


def _probe_from_npz(path: Path) -> np.ndarray:
    with NpzReader(path) as npz:
        for key in ("probe", "probeGuess"):
            if key in npz:
                return npz.array(key)
        raise DataError(
            f"{path}: no key 'probe' or 'probeGuess'; found keys {', '.join(npz.keys) or 'none'}"
        )


def load_probe(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a complex probe, every incoherent mode kept: ``probe.kind = "file:PATH"``, the probe
    files of train, infer and iterative.

    Accepted sources: a canonical dataset (``.h5``/``.npz``, key ``probe``), a PtychoPINN NPZ
    (``probeGuess``), a Ptychodus product HDF5 or NPZ, the ``<stem>.probe.npz`` of ``ptycho
    iterative``: ``(h, w)``, ``(K, h, w)`` modes or ``(…, K, h, w)`` (the first entry of the
    axes before the modes is kept, with a ``UserWarning`` when there are more;
    :func:`~ptycho.data.coercion.probe_modes_from`).

    Returns
    -------
    (N, N) or (K, N, N) complex64
        The probe as stored (√counts in the canonical gauge); one mode comes back ``(N, N)``.

    Raises
    ------
    DataError
        Missing file, unknown suffix, no probe key, no modes, non-square or non-finite probe.
    """
    p = _existing_file(path)
    suffix = p.suffix.lower()
    if suffix in H5_SUFFIXES:
        raw: Any = _probe_from_h5(p)
    elif suffix in NPZ_SUFFIXES:
        raw = _probe_from_npz(p)
    else:
        raise _unknown_suffix(path)
    probe = coerce_array(raw, np.complex64, key="probe", where=str(path))
    probe = probe_modes_from(probe, "probe", str(path))
    if probe.ndim < 2 or probe.shape[-1] != probe.shape[-2]:
        raise DataError(
            f"{path}: key 'probe' has shape {tuple(raw.shape)}; expected a square (N, N) array "
            "or (K, N, N) modes"
        )
    if not np.isfinite(probe).all():
        raise DataError(f"{path}: key 'probe' contains NaN or Inf values; expected finite numbers")
    return np.ascontiguousarray(probe)


def check_mask_fits(mask: np.ndarray, N: int, *, mask_where: str, data_where: str) -> np.ndarray:
    """``mask`` if it is ``(N, N)``, the pattern size of the dataset ``data_where``.

    Raises
    ------
    DataError
        Naming both shapes.
    """
    if mask.shape != (N, N):
        raise DataError(f"{mask_where}: mask is {'×'.join(map(str, mask.shape))} but the patterns of {data_where} are "
                        f"{N}×{N}; give a mask of the pattern size (True = measured pixel)")
    return mask


def load_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a valid-pixel mask (True/1 = measured pixel): the mask file of train, infer, iterative, import.

    Accepted: ``.npy`` (the array itself), ``.npz`` or ``.h5``/``.hdf5`` with a key ``mask``
    (any ptycho dataset holding one). Polarity is always *valid* pixels; a bit-field mask whose
    set bits mean *bad* (CXI) is converted by ``ptycho import``, not here.

    Returns
    -------
    (n, n) bool

    Raises
    ------
    DataError
        Missing file or key, not 2-D, not bool/0-1 integers, or no valid pixel.
    """
    p = _existing_file(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            raw: Any = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read as .npy ({one_line(exc)})") from None
    elif suffix in NPZ_SUFFIXES:
        with NpzReader(p) as npz:
            raw = npz.array("mask")
    elif suffix in H5_SUFFIXES:
        try:
            with h5py.File(p, "r") as f:
                if not isinstance(f.get("mask"), h5py.Dataset):
                    raise DataError(f"{path}: no dataset 'mask' at the root; expected valid pixels (True = measured)")
                raw = f["mask"][()]
        except OSError as exc:
            raise DataError(f"{path}: cannot read as HDF5 ({one_line(exc)})") from None
    else:
        raise DataError(f"{path}: unknown mask format for suffix {suffix or '(none)'}; use .npy, .npz or .h5")
    mask = coerce_mask(raw, where=str(path))
    if mask.ndim != 2:
        raise DataError(f"{path}: mask has shape {mask.shape}; expected (N, N) valid pixels")
    if not mask.any():
        raise DataError(f"{path}: mask marks no pixel as valid; expected True/1 for measured pixels")
    return mask
