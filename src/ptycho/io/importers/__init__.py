"""Importers of other tools' files (``ptycho import``), one module per format.

Each returns an :class:`ImportedScan` in its source's conventions; the workflow
(:mod:`ptycho.workflows.import_data`) converts to the canonical dataset and records every step.
The built-ins are registered through the ``ptycho_importers`` hook like third-party formats.
"""

from __future__ import annotations

from ptycho.io.importers.record import ImportedScan, probe_modes_of
from ptycho.records import ImporterSpec

__all__ = ["ImportedScan", "builtin_importer_specs", "probe_modes_of"]


def builtin_importer_specs() -> list[ImporterSpec]:
    """Sniffed in this order: ptycho's own formats first, then the foreign ones."""
    from ptycho.io.importers import cxi, ours, ptychi, tike

    return [
        ImporterSpec("ptycho", ours.sniff_canonical, ours.read_canonical,
                     "canonical ptycho dataset (to crop, bin or mask it)", (".h5", ".hdf5", ".npz")),
        ImporterSpec("ptychodus", ours.sniff_ptychodus, ours.read_ptychodus,
                     "Ptychodus product with its diffraction.h5 (or a workflow directory)", (".h5", ".npz")),
        ImporterSpec("ptychopinn-npz", ours.sniff_ptychopinn, ours.read_ptychopinn,
                     "earlier PtychoPINN NPZ (diff3d amplitudes, xcoords, probeGuess)", (".npz",)),
        ImporterSpec("tike-npz", tike.sniff_tike, tike.read_tike,
                     "tike arrays: data (DC at corner), scan (window corners, row/column), probe modes",
                     (".npz",)),
        ImporterSpec("ptychi-npz", ptychi.sniff_ptychi, ptychi.read_ptychi,
                     "pty-chi arrays: data (DC centred), positions_px ((y, x) pixels from its object origin), "
                     "probe (OPR, K, n, n), pixel_size_m", (".npz",)),
        ImporterSpec("cxi", cxi.sniff_cxi, cxi.read_cxi,
                     "CXI 1.6: entry_1/data_1/data, sample translation in m, detector, source energy, mask",
                     (".cxi", ".h5")),
    ]
