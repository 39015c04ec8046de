"""Bundle format versions, and how the config of an older bundle reads today
(docs/formats.md#model-bundles).

Every field a later version added gets, in an older bundle's config, the value that was that
version's behaviour, so an old bundle loads as the model it was trained as.
"""

from __future__ import annotations

from typing import Any

BUNDLE_VERSION = 8
"""2: ``model.estimate`` (global rPIE input). Version 1 bundles, which predate it, used the group estimate.
3: leave-fold-out global estimates (``model.estimate_folds``, ``estimate_alpha``, ``estimate_batch_size``);
version 2 bundles read one estimate of every pattern, 2 rPIE passes at alpha 0.1 in minibatches of 8.
4: ``train.refine_positions`` and the optional ``positions.npz``; earlier bundles trained at the
dataset's positions (they load with no stored positions).
5: ``model.phase_activation`` and ``model.estimate_residual``; earlier networks had the π·tanh phase
head and read the global estimate without adding to it (:data:`VERSION_4_NETWORK`).
6: ``model.estimate_patience`` and ``estimate_max_passes``, the held-out continuation of the global
estimate; earlier bundles ran exactly ``global_passes`` (:data:`VERSION_5_ESTIMATE`).
7: ``probe`` (where ``probe.npy`` came from: the dataset, ``train.probe_file`` or refinement; ``infer``
uses it unless it is the dataset's) and ``mask`` with the optional ``mask.npy`` (the detector mask
training excluded; ``infer`` applies it to a scan without one). Earlier bundles record the probe as
their ``infer`` used it (:func:`version_6_probe`) and no mask.
8: ``model.estimate_engine`` and ``estimate_ml_iterations``, a maximum-likelihood global estimate;
earlier bundles made it by rPIE (:data:`VERSION_7_ESTIMATE`)."""
VERSION_4_NETWORK = {"phase_activation": "pi_tanh", "estimate_residual": False}
"""The network of bundles before version 5 (their config has no such fields)."""
VERSION_5_ESTIMATE = {"estimate_patience": 0}
"""The global estimate of bundles before version 6: ``global_passes`` and no more."""
VERSION_7_ESTIMATE = {"estimate_engine": "rpie"}
"""The global estimate of bundles before version 8: rPIE passes."""
VERSION_2_ESTIMATE = {"estimate_folds": 0, "global_passes": 2, "estimate_alpha": 0.1, "estimate_batch_size": 8}
"""The global estimate of version 2 bundles (their config has no such fields: these were the behaviour)."""


def version_6_probe(model: dict[str, Any]) -> dict[str, Any]:
    """The probe record of a bundle before version 7, as its ``infer`` behaved: the bundle's probe when
    it was refined (``probe_trainable``), else the dataset's (even if training read a probe file)."""
    return {"source": "refined" if model.get("probe_trainable", False) else "dataset", "file": None}


VERSION_6_MASK = {"source": "none", "file": None}
"""Bundles before version 7 store no mask."""


def upgraded_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of a bundle of any supported version with the fields of later versions
    filled in as that version behaved (``model`` and ``train.model`` alike); the input is not changed.

    Raises
    ------
    KeyError, TypeError, ValueError
        A config without the sections every version has.
    """
    version = int(config.get("format_version", 0))
    model, train = dict(config["model"]), dict(config["train"])
    train_model = dict(train.get("model", {}))
    if version < 2:  # before model.estimate: the group ePIE estimate
        model, train_model = {"estimate": "group", **model}, {"estimate": "group", **train_model}
    if version < 3:  # before leave-fold-out estimates
        model, train_model = {**model, **VERSION_2_ESTIMATE}, {**train_model, **VERSION_2_ESTIMATE}
    if version < 5:  # before the unbounded phase head and the residual global estimate
        model, train_model = {**model, **VERSION_4_NETWORK}, {**VERSION_4_NETWORK, **train_model}
    if version < 6:  # before the held-out continuation of the global estimate
        model, train_model = {**model, **VERSION_5_ESTIMATE}, {**VERSION_5_ESTIMATE, **train_model}
    if version < 8:  # before the maximum-likelihood global estimate
        model, train_model = {**model, **VERSION_7_ESTIMATE}, {**VERSION_7_ESTIMATE, **train_model}
    upgraded = {**config, "model": model, "train": {**train, "model": train_model}}
    if version < 7:  # before the probe and mask records
        upgraded.update(probe=version_6_probe(model), mask=VERSION_6_MASK)
    return upgraded
