"""The public plugin API of ``ptycho``: everything a plugin needs, from one module.

A plugin is a module (or object) with ``@hookimpl`` functions named after the hooks of
:mod:`ptycho_cli.hookspecs`, exposed under the entry-point group ``ptycho``::

    # pyproject.toml
    [project.entry-points.ptycho]
    rings = "ptycho_rings.plugin"

    # ptycho_rings/plugin.py
    from ptycho_cli.api import CommandSpec, ObjectSpec, VariantSpec, hookimpl

    @hookimpl
    def ptycho_objects():
        return [ObjectSpec("rings", rings_pattern, "concentric rings")]

Import from here rather than from the shell's internal modules: these names are kept stable
across releases, the modules behind them are not. What is here:

- ``hookimpl`` — the marker for hook implementations (project ``ptycho``).
- The records hooks return: ``CommandSpec``, ``ObjectSpec``, ``ProbeSpec``, ``ScanSpec``,
  ``ModelSpec``, ``VariantSpec``, ``ImporterSpec``.
- The options every command shares (docs/cli.md#configuration), as Typer annotations: ``ConfigFiles``
  (``--config``, repeatable), ``SetItems`` (``--set dotted.key=value``), ``Quiet``, ``Verbose``,
  ``Json``.
- Configuration: ``resolve_config(Model, section, files=, sets=, flags=, base=, sections=)`` merges
  defaults < ``base`` < config files (their ``section:`` part) < ``--set`` < flags and validates
  once (``ConfigError`` → exit code 2); pass ``sections=ctx.obj.config_sections()`` so a shared
  file's other sections (plugins' included) are skipped. ``read_config_file`` and ``section_of``
  for custom layering. Declare your section as ``CommandSpec(..., config_section=...)``.
- Errors: ``guard(verbose, flags)`` — a context manager that turns exceptions into one ``error: …``
  line and the exit codes of ``ExitCode``, printing the config fields the core names
  (`` `iterative.alpha` ``) as the command's flags given in ``flags`` (``{"iterative.alpha":
  "--alpha"}``); ``fail(message, code)``; the core's exceptions to raise from
  plugin code so that ``guard`` maps them: ``PtychoError`` > ``ConfigError`` (exit 2),
  ``DataError`` (3), ``NumericalError`` (4).
- Output: ``print_summary(title, rows, as_json=, quiet=)``, ``progress_bar(description, quiet=)``
  (yields ``update(done, total)``), ``metrics_table(metrics)`` (a rich table of ``metrics.json``).
- Study commands (a list of pipeline runs, see :mod:`ptycho.workflows.study`):
  ``study_progress(description, quiet=)`` (yields the ``progress(done, total, detail)`` callback
  of a study) and ``print_study(name, result, (header, body), title=, as_json=, quiet=)`` (the
  results table and a summary of the files, or ``metrics.json`` with ``--json``), and
  ``run_study_command(name, config, out, components, plan=, run=, table=, title=, as_json=, quiet=)``,
  which does both around a study's ``plan`` and ``run_study``.
- ``PluginHost`` — the type of ``ctx.obj`` in a command: ``ctx.obj.components()`` gives the
  objects, probes, scans, models and variants of every installed plugin, to pass to the core's
  workflows.

None of this imports TensorFlow; import heavy modules inside command bodies so that
``ptycho --help`` and ``ptycho plugins`` stay fast. Do not ``import click``: use ``typer.Exit`` and
``typer.BadParameter``. The author guide is ``docs/plugins.md``.
"""

from __future__ import annotations

from ptycho.errors import ConfigError, DataError, NumericalError, PtychoError
from ptycho_cli.config_io import read_config_file, resolve_config, section_of
from ptycho_cli.console import print_summary, progress_bar
from ptycho_cli.errors import ExitCode, fail, guard
from ptycho_cli.hookspecs import hookimpl
from ptycho_cli.options import ConfigFiles, Json, Quiet, SetItems, Verbose
from ptycho_cli.plugins import PluginHost
from ptycho_cli.specs import (
    CommandSpec,
    ImporterSpec,
    ModelSpec,
    ObjectSpec,
    ProbeSpec,
    ScanSpec,
    VariantSpec,
)
from ptycho_cli.studies import print_study, run_study_command, study_progress
from ptycho_cli.tables import metrics_table

__all__ = [
    "CommandSpec",
    "ConfigError",
    "ConfigFiles",
    "DataError",
    "ExitCode",
    "ImporterSpec",
    "Json",
    "ModelSpec",
    "NumericalError",
    "ObjectSpec",
    "PluginHost",
    "ProbeSpec",
    "PtychoError",
    "Quiet",
    "ScanSpec",
    "SetItems",
    "VariantSpec",
    "Verbose",
    "fail",
    "guard",
    "hookimpl",
    "metrics_table",
    "print_study",
    "print_summary",
    "progress_bar",
    "read_config_file",
    "resolve_config",
    "run_study_command",
    "section_of",
    "study_progress",
]
