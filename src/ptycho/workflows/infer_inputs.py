"""The probe and the detector mask ``infer`` reconstructs a new scan with (docs/measured-data.md).

Probe: ``infer.probe_file`` if given; else the bundle's whenever training did not use its dataset's
own probe (a probe file or a refined probe: the new dataset's probe is then the stale guess the
model was not trained with); else the new dataset's. Always at the new dataset's photon gauge.

Mask: ``infer.mask`` if given, else the scan's own ``mask``, else the bundle's (the detector that
measured the training scan usually measures the next one). The most specific mask wins rather than
the union of the scan's and the bundle's: a scan's own mask is its detector's statement of which
pixels it measured, and a union would silently drop pixels it says are good (a moved beamstop,
another detector); to add the training mask's pixels, give the union as ``infer.mask``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ptycho.data.dataset import Dataset
from ptycho.io.datasets import check_mask_fits
from ptycho.models.bundle_sources import MASK_FILE
from ptycho.physics.probe import probe_energy
from ptycho.workflows.probe_setup import at_photon_gauge, probe_from_file

if TYPE_CHECKING:
    from ptycho.models.bundle import Bundle


def choose_probe(dataset: Dataset, bundle: Bundle, probe_file: str | None) -> str:
    """Put the probe the network's input is made with into ``dataset`` (in place) and say which it is:
    ``"file …"``, ``"model: …"`` (the bundle's, :meth:`~ptycho.models.bundle_sources.TrainingProbe.describe`)
    or ``"dataset"``."""
    if probe_file is not None:
        dataset.probe = probe_from_file(probe_file, dataset)
        return f"file {probe_file}"
    if not bundle.probe_source.replaces_datasets:
        return "dataset"
    dataset.probe = at_photon_gauge(bundle.model.probe_variables.numpy(), probe_energy(dataset.probe))
    return f"model: {bundle.probe_source.describe()}"


def choose_mask(dataset: Dataset, bundle: Bundle, mask_file: object | None) -> str:
    """Give ``dataset`` (in place) the bundle's training mask when it has none of its own (neither
    ``infer.mask`` nor a ``mask`` key), and say which mask is used: ``"file …"``, ``"dataset"``,
    ``"model: …"`` or ``"none"``.

    Raises
    ------
    DataError
        The bundle's mask is not of the scan's pattern size (naming both shapes).
    """
    if mask_file is not None:
        return f"file {mask_file}"
    if dataset.mask is not None:
        return "dataset"
    if bundle.mask.valid is None:
        return "none"
    where = f"{bundle.path / MASK_FILE} (the model's training mask)"
    dataset.mask = check_mask_fits(np.asarray(bundle.mask.valid, bool), dataset.N, mask_where=where,
                                   data_where=str(dataset.source or "the dataset"))
    return f"model: {bundle.mask.describe()}"
