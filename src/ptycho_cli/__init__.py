"""The ``ptycho`` command line: a Typer app built from a pluggy plugin manager.

Plugin authors import from here: ``hookimpl`` and the spec records.
"""

from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.specs import CommandSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec

__all__ = ["hookimpl", "CommandSpec", "ModelSpec", "ObjectSpec", "ProbeSpec", "ScanSpec", "VariantSpec"]
