"""The Ptychodus product record, its constants and geometry helpers (see the package docstring)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.errors import ConfigError, DataError
from ptycho.io.h5 import H5_SUFFIXES

DIFFRACTION_FILE = "diffraction.h5"
PRODUCT_FILE = "product.h5"
PRODUCT_FORMATS = ("h5", "npz")
HC_EV_M = 6.62607015e-34 * 299792458 / 1.602176634e-19
"""Planck constant × speed of light / elementary charge (eV·m), the exact SI values Ptychodus uses."""
PIXEL_RTOL = 1e-6
"""Relative tolerance for 'the same pixel size' (probe vs object sampling)."""
DETECTOR_RTOL = 1e-3
"""Relative disagreement between the detector pixel and λz/(N·dx) that earns a warning on import."""

_NPZ_KEYS = {  # Ptychodus' flat spelling of the per-dataset HDF5 attributes
    ("probe", "pixel_width_m"): "probe_pixel_width_m", ("probe", "pixel_height_m"): "probe_pixel_height_m",
    ("object", "pixel_width_m"): "object_pixel_width_m", ("object", "pixel_height_m"): "object_pixel_height_m",
    ("object", "center_x_m"): "object_center_x_m", ("object", "center_y_m"): "object_center_y_m",
}
_SCALARS = ("probe_photon_count", "exposure_time_s", "mass_attenuation_m2_per_kg", "tomography_angle_deg",
            "focus_object_distance_m", "tilt_angle_deg")
_MARKER_KEYS = {"probe_position_x_m", "probe_position_y_m", "probe", "object"}


@dataclass(frozen=True, eq=False)
class PtychodusProduct:
    """A Ptychodus product in ptycho's terms (Dataset-like: ``probe``, ``x``, ``y``, ``object``).

    Attributes
    ----------
    object : (H, W) complex64
        The object (first layer, or the product of the layers of a multislice object).
    probe : (N, N) or (K, N, N) complex64
        √counts; every incoherent mode (of the first coherent entry of a ``(C, K, N, N)`` stack).
    x, y : (M,) float64
        Probe centres in pixels of ``object`` (docs/conventions.md#windows).
    indexes : (M,) int64
        Ptychodus scan index of each position (pairs positions with patterns).
    pixel_width_m, pixel_height_m : float
        Object pixel size.
    probe_pixel_width_m, probe_pixel_height_m : float
    center_x_m, center_y_m : float
        World position of the object array's centre.
    photon_energy_eV, detector_distance_m, probe_photon_count, exposure_time_s, … : float
        Product metadata, Ptychodus' names and units.
    loss_epochs : (K,) int64 ; loss_values : (K,) float64
    diffraction : (M, N, N) array-like or None
        Counts of each position, when a diffraction companion was read.
    mask : (N, N) bool or None
        Valid detector pixels (the companion's ``bad_pixels`` inverted), None when none is bad.
    """

    object: np.ndarray
    probe: np.ndarray
    x: np.ndarray
    y: np.ndarray
    indexes: np.ndarray
    pixel_width_m: float
    pixel_height_m: float
    probe_pixel_width_m: float
    probe_pixel_height_m: float
    center_x_m: float
    center_y_m: float
    photon_energy_eV: float
    detector_distance_m: float
    name: str = "Unnamed"
    comments: str = ""
    probe_photon_count: float = 0.0
    exposure_time_s: float = 0.0
    mass_attenuation_m2_per_kg: float = 0.0
    tomography_angle_deg: float = 0.0
    focus_object_distance_m: float = 0.0
    tilt_angle_deg: float = 0.0
    far_field: bool = True
    loss_epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loss_values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    diffraction: Any = None
    mask: np.ndarray | None = None
    source: str | None = None
    _closer: Any = field(default=None, repr=False)

    @property
    def N(self) -> int:
        return int(self.probe.shape[-1])

    def positions_m(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_m, y_m)``: ``center + d·(x_px − (W−1)/2)``, the inverse of Ptychodus' mapping."""
        H, W = self.object.shape
        x_m = self.center_x_m + self.pixel_width_m * (self.x - (W - 1) / 2)
        y_m = self.center_y_m + self.pixel_height_m * (self.y - (H - 1) / 2)
        return x_m, y_m

    @property
    def metadata(self) -> dict[str, Any]:
        """Physical metadata in ptycho's names (``pixel_size_m`` only for square object pixels)."""
        meta: dict[str, Any] = {
            "source_format": "ptychodus-product", "name": self.name, "comments": self.comments,
            "photon_energy_eV": self.photon_energy_eV, "detector_distance_m": self.detector_distance_m,
            "pixel_width_m": self.pixel_width_m, "pixel_height_m": self.pixel_height_m,
            "probe_pixel_width_m": self.probe_pixel_width_m, "probe_pixel_height_m": self.probe_pixel_height_m,
            "object_center_x_m": self.center_x_m, "object_center_y_m": self.center_y_m,
            **{key: getattr(self, key) for key in _SCALARS}, "far_field": self.far_field,
        }
        if math.isclose(self.pixel_width_m, self.pixel_height_m, rel_tol=PIXEL_RTOL):
            meta["pixel_size_m"] = self.pixel_width_m
        return meta

    def to_dataset(self) -> Dataset:
        """The canonical :class:`Dataset` (needs ``diffraction``; probe sampled like the object).

        Raises
        ------
        DataError
            No diffraction, or a probe pixel size different from the object's.
        """
        where = self.source or "Ptychodus product"
        if self.diffraction is None:
            raise DataError(f"{where}: a Ptychodus product holds no diffraction patterns; put the workflow's "
                            f"{DIFFRACTION_FILE} beside it (or export with `export.with_diffraction`)")
        for axis in ("width", "height"):
            probe_d, obj_d = getattr(self, f"probe_pixel_{axis}_m"), getattr(self, f"pixel_{axis}_m")
            if not math.isclose(probe_d, obj_d, rel_tol=PIXEL_RTOL):
                raise DataError(f"{where}: probe pixel {axis} {probe_d:g} m differs from the object's {obj_d:g} m; "
                                "ptycho needs both sampled alike (resample the probe in Ptychodus)")
        return Dataset(diffraction=self.diffraction, x=self.x, y=self.y, probe=self.probe, object=self.object,
                       metadata=self.metadata, source=self.source, mask=self.mask, _closer=self._closer)


def world_center_m(origin_px: float, size_px: int, pixel_m: float) -> float:
    """Object-array centre in metres when global object pixel 0 is the world origin.

    With this centre ``x_m = dx · x_global``: the metres of a position do not depend on which
    crop of the object is exported.
    """
    return pixel_m * (origin_px + (size_px - 1) / 2)


def detector_pixel_size_m(photon_energy_eV: float, distance_m: float, N: int, probe_pixel_m: float) -> float:
    """Detector pixel of the far-field geometry: ``λ z / (N · dx)`` (Ptychodus' Fraunhofer relation)."""
    return (HC_EV_M / photon_energy_eV) * distance_m / (N * probe_pixel_m)


def product_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``"h5"`` or ``"npz"``: ``fmt`` checked against the suffix, or chosen from it (ConfigError)."""
    suffix = Path(path).suffix.lower()
    by_suffix = "h5" if suffix in H5_SUFFIXES else "npz" if suffix == ".npz" else None
    if fmt is None:
        if by_suffix is None:
            raise ConfigError(f"{path}: cannot tell the product format from suffix {suffix or '(none)'}; "
                              "use .h5, .hdf5 or .npz")
        return by_suffix
    if fmt not in PRODUCT_FORMATS:
        raise ConfigError(f"unknown product format {fmt!r}; expected h5 or npz")
    if by_suffix != fmt:
        raise ConfigError(f"{path}: format {fmt!r} needs a file name ending in "
                          f"{'.h5 or .hdf5' if fmt == 'h5' else '.npz'}")
    return fmt


# --------------------------------------------------------------------------- writing


def _check_for_writing(p: PtychodusProduct) -> None:
    obj, probe = np.asarray(p.object), np.asarray(p.probe)
    if obj.ndim != 2 or probe.ndim not in (2, 3) or probe.shape[-1] != probe.shape[-2] or probe.size == 0:
        raise ValueError(f"need an (H, W) object and a square (N, N) probe or (K, N, N) modes; got {obj.shape} "
                         f"and {probe.shape}")
    M = len(p.x)
    if np.shape(p.y) != (M,) or np.shape(p.indexes) != (M,) or np.shape(p.loss_epochs) != np.shape(p.loss_values):
        raise ValueError("x, y, indexes must be (M,) and loss_epochs, loss_values of one length")


def _h5_contents(p: PtychodusProduct) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    attrs: dict[str, Any] = {
        "name": p.name, "comments": p.comments, "detector_object_distance_m": float(p.detector_distance_m),
        "photon_energy_eV": float(p.photon_energy_eV), "probe_energy_eV": float(p.photon_energy_eV),
        **{key: float(getattr(p, key)) for key in _SCALARS}, "far_field": bool(p.far_field),
    }
    x_m, y_m = p.positions_m()
    arrays = {
        "probe_position_indexes": np.asarray(p.indexes, np.int64),
        "probe_position_x_m": np.asarray(x_m, np.float64), "probe_position_y_m": np.asarray(y_m, np.float64),
        "probe": np.asarray(p.probe, np.complex64).reshape(1, -1, *np.shape(p.probe)[-2:]),  # (1, K, N, N)
        "object": np.asarray(p.object, np.complex64)[None],
        "object_layer_spacing_m": np.zeros(0, np.float64),
        "loss_epochs": np.asarray(p.loss_epochs, np.int64), "loss_values": np.asarray(p.loss_values, np.float64),
    }
    return attrs, arrays


def _dataset_attrs(p: PtychodusProduct) -> dict[tuple[str, str], float]:
    return {
        ("probe", "pixel_width_m"): p.probe_pixel_width_m, ("probe", "pixel_height_m"): p.probe_pixel_height_m,
        ("object", "pixel_width_m"): p.pixel_width_m, ("object", "pixel_height_m"): p.pixel_height_m,
        ("object", "center_x_m"): p.center_x_m, ("object", "center_y_m"): p.center_y_m,
    }
