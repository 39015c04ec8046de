"""Which flag of each built-in command sets which config field: the one table the shell uses to
turn the core's field references into flags when it prints an error.

The core names fields (``ptycho.errors``: `` `train.learning_rate` ``); :func:`render` replaces
each reference by the running command's flag (``--learning-rate``), or by the bare dotted path
where the command has no flag for it. Built-in commands pass their row of :data:`COMMAND_FLAGS` to
``guard(verbose, flags=...)``; a plugin command passes its own mapping the same way. A test checks
that every flag here is an option of its command and every field a field of its config (or a
keyword argument of its workflow).
"""

from __future__ import annotations

from collections.abc import Mapping

from ptycho.errors import FIELD_REFERENCE

COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "simulate": {
        "simulate.object.kind": "--object", "simulate.probe.kind": "--probe",
        "simulate.probe.modes": "--probe-modes", "simulate.scan.kind": "--scan",
        "simulate.gridsize": "--gridsize", "simulate.scan.n_images": "--n-images", "simulate.N": "--N",
        "simulate.object.size": "--size", "simulate.nphotons": "--nphotons", "simulate.seed": "--seed",
        "simulate.noise": "--no-noise", "simulate.scan.step_px": "--step", "simulate.scan.jitter_px": "--jitter",
        "simulate.photon_energy_eV": "--photon-energy-ev", "simulate.detector_distance_m": "--detector-distance-m",
        "simulate.pixel_size_m": "--pixel-size-m",
    },
    "train": {
        "train.model.gridsize": "--gridsize", "train.epochs": "--epochs", "train.batch_size": "--batch-size",
        "train.loss": "--loss", "train.learning_rate": "--learning-rate", "train.n_groups": "--n-groups",
        "train.neighbors": "--neighbors", "train.model.N": "--N", "train.model.n_filters_scale": "--n-filters-scale",
        "train.model.estimate": "--estimate", "train.strategy": "--strategy", "train.jit": "--jit",
        "train.seed": "--seed", "train.resume": "--resume", "train.mask": "--mask", "train.force": "--force",
        "train.refine_probe": "--refine-probe", "train.probe_file": "--probe",
        "train.cluster.resolver": "--cluster", "train.refine_positions": "--refine-positions",
    },
    "infer": {"infer.batch_size": "--batch-size", "infer.n_groups": "--n-groups", "infer.jit": "--jit",
              "infer.mask": "--mask", "infer.probe_file": "--probe", "infer.refine_positions": "--refine-positions"},
    "stitch": {"stitch.crop": "--crop", "stitch.chunk_groups": "--chunk-groups", "stitch.method": "--method"},
    "evaluate": {
        "evaluate.phase_ramp": "--phase-ramp", "evaluate.registration": "--no-register",
        "evaluate.upsample": "--upsample",
    },
    "export-ptychodus": {
        "export.format": "--format", "export.photon_energy_eV": "--photon-energy-ev",
        "export.detector_distance_m": "--detector-distance-m", "export.pixel_size_m": "--pixel-size-m",
        "export.probe_pixel_size_m": "--probe-pixel-size-m", "export.probe_photon_count": "--probe-photon-count",
        "export.exposure_time_s": "--exposure-time-s", "export.name": "--name", "export.comments": "--comments",
        "export.with_diffraction": "--with-diffraction", "export.probe": "--probe",
    },
    "import": {
        "import.format": "--format", "import.dc": "--dc", "import.N": "--N", "import.reduce": "--reduce",
        "import.probe": "--probe", "import.mask": "--mask", "import.probe_power": "--probe-power",
        "import.photon_energy_eV": "--photon-energy-ev", "import.detector_distance_m": "--detector-distance-m",
        "import.detector_pixel_size_m": "--detector-pixel-size-m", "import.overwrite": "--overwrite",
    },
    "debug-ab": {
        "debug_ab.stages": "--stages", "debug_ab.epochs": "--epochs", "debug_ab.n_images": "--n-images",
        "debug_ab.stop_on_divergence": "--stop-on-divergence", "debug_ab.figure": "--no-figure",
        "debug_ab.replicates": "--replicates",
    },
}
"""Per built-in command: dotted config field (from the section) → the flag that sets it."""


def render(message: str, flags: Mapping[str, str] | None = None) -> str:
    """``message`` with every `` `field` `` reference replaced by its flag in ``flags``, or by the
    bare dotted path if ``flags`` has none for it."""
    table = flags or {}
    return FIELD_REFERENCE.sub(lambda m: table.get(m.group(1), m.group(1)), message)
