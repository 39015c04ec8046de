"""The ``ptycho_*`` hook specifications. Every hook returns an iterable of spec records;
the host collects them, checks name conflicts and owns the error policy.

Implement a hook in a plugin module::

    from ptycho_cli import hookimpl, ObjectSpec

    @hookimpl
    def ptycho_objects():
        return [ObjectSpec("rings", make_rings, "concentric rings")]

and expose the module under the entry-point group ``ptycho`` in ``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from ptycho_cli.specs import CommandSpec, ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec

PROJECT = "ptycho"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ptycho_commands() -> Iterable[CommandSpec]:
    """Subcommands to add to ``ptycho``.

    Example::

        @hookimpl
        def ptycho_commands():
            return [CommandSpec("hello", hello)]
    """


@hookspec
def ptycho_objects() -> Iterable[ObjectSpec]:
    """Synthetic object generators, usable as ``--object NAME`` (or ``NAME:ARG``).

    Example::

        @hookimpl
        def ptycho_objects():
            return [ObjectSpec("rings", rings_pattern, "concentric rings")]
    """


@hookspec
def ptycho_probes() -> Iterable[ProbeSpec]:
    """Probe makers, usable as ``--probe NAME``.

    Example::

        @hookimpl
        def ptycho_probes():
            return [ProbeSpec("annulus", annulus_probe, "annular aperture")]
    """


@hookspec
def ptycho_scans() -> Iterable[ScanSpec]:
    """Scan patterns, usable as ``--scan NAME``.

    Example::

        @hookimpl
        def ptycho_scans():
            return [ScanSpec("spiral", fermat_spiral, "Fermat spiral")]
    """


@hookspec
def ptycho_models() -> Iterable[ModelSpec]:
    """Network architectures, chosen with ``model.architecture = NAME`` in the train config
    (``ptycho train --set model.architecture=NAME``). ``build(config)`` receives the resolved
    ``ptycho.config.train.ModelConfig`` and reads ``config.input_channels`` channels per group
    member (√counts, plus Re/Im of the input estimate the model uses).

    Example::

        @hookimpl
        def ptycho_models():
            return [ModelSpec("unet", build_unet, "U-Net with skip connections")]
    """


@hookspec
def ptycho_ab_variants() -> Iterable[VariantSpec]:
    """Named variants for ``ptycho debug-ab``: dotted config keys and values.

    Example::

        @hookimpl
        def ptycho_ab_variants():
            return [VariantSpec("big-probe", {"simulate.probe.diameter_frac": 0.7})]
    """


@hookspec
def ptycho_importers() -> Iterable[ImporterSpec]:
    """File formats ``ptycho import`` reads (``--format NAME``, or recognised by ``sniff``).

    ``read(path)`` returns a :class:`ptycho.io.importers.ImportedScan` in the source's own
    conventions, naming them; the host converts and records every step.

    Example::

        @hookimpl
        def ptycho_importers():
            return [ImporterSpec("mybeamline", sniff_mybeamline, read_mybeamline,
                                 "MyBeamline HDF5: /scan/frames, /scan/xy_m", (".h5",))]
    """
