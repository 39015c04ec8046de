"""Ptychodus product files and the diffraction companion of a Ptychodus workflow directory (docs/formats.md#ptychodus-products).

Written to match what Ptychodus 1.7.0 itself writes (``ptychodus.api.io.save_product``,
``ptychodus.plugins.npz_product_file.NPZProductFileIO.write``) and reads (``load_product``,
``NPZProductFileIO.read``, ``load_diffraction_data``).

**HDF5 product** (``.h5``/``.hdf5``)::

    attrs   name, comments (str); detector_object_distance_m, photon_energy_eV, probe_energy_eV
            (the pre-rename spelling, for older readers), probe_photon_count, exposure_time_s,
            mass_attenuation_m2_per_kg, tomography_angle_deg, focus_object_distance_m (0),
            tilt_angle_deg (0) (float); far_field (bool, True)
    probe_position_indexes (M,)          int64    scan index of each position (0 … M−1)
    probe_position_x_m/_y_m (M,)         float64  probe centres, metres, world frame
    probe                  (1, K, N, N)  complex64  √counts, K incoherent modes (Ptychodus' (coherent,
                                                    incoherent, h, w)); attrs pixel_width_m, pixel_height_m
    object                 (1, H, W)     complex64  attrs pixel_width_m, pixel_height_m,
                                                    center_x_m, center_y_m
    object_layer_spacing_m (0,)          float64  (one layer)
    loss_epochs (K,) int64, loss_values (K,) float64

**NPZ product**: the same values as flat keys; the attributes become ``probe_pixel_width_m``,
``probe_pixel_height_m``, ``object_pixel_width_m``, ``object_pixel_height_m``,
``object_center_x_m``, ``object_center_y_m`` (Ptychodus' NPZ spelling); strings are 0-d
unicode arrays, so no pickle is needed to read it.

**Positions.** Ptychodus maps metres to object-array pixels as
``x_px = (x_m − center_x_m)/dx + (W−1)/2`` (``ObjectGeometry.map_probe_positions_to_object_x_px``):
pixel centres at integers and the object centre at ``(W−1)/2`` — the convention of docs/conventions.md#windows — so
``x_m = center_x_m + dx·(x_px − (W−1)/2)`` with ``x_px`` relative to the object array is exact.

**Gauge.** Ptychodus normalises a probe to ``Σ|P|² = probe_photon_count`` and propagates with a
unitary far-field transform, as ptycho does: the probe is exported and imported unchanged.

**Diffraction companion** (``diffraction.h5``, Ptychodus' ``StandardFileLayout.DIFFRACTION``)::

    patterns    (M, N, N) counts, DC-centred; attrs detector_pixel_width_m, detector_pixel_height_m
    indexes     (M,)      int64, matched to probe_position_indexes
    bad_pixels  (N, N)    bool
    probe_photon_counts (M,) optional

A folder holding ``product.h5`` and ``diffraction.h5`` is a Ptychodus workflow directory (what
``ptychodus`` batch mode and its reconstruct CLIs open; ``settings.ini`` is optional there).
"""

from ptycho.io.ptychodus.product import (
    DIFFRACTION_FILE,
    PRODUCT_FILE,
    PRODUCT_FORMATS,
    PtychodusProduct,
    detector_pixel_size_m,
    product_format,
    world_center_m,
)
from ptycho.io.ptychodus.companion import find_diffraction_companion
from ptycho.io.ptychodus.read import (
    is_ptychodus_product,
    read_ptychodus_dataset,
    read_ptychodus_product,
)
from ptycho.io.ptychodus.write import (
    write_ptychodus_diffraction,
    write_ptychodus_product,
)

__all__ = [
    "DIFFRACTION_FILE", "PRODUCT_FILE", "PRODUCT_FORMATS", "PtychodusProduct", "detector_pixel_size_m",
    "find_diffraction_companion", "is_ptychodus_product", "product_format", "read_ptychodus_dataset",
    "read_ptychodus_product", "world_center_m", "write_ptychodus_diffraction", "write_ptychodus_product",
]
