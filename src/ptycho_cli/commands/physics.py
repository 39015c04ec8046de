"""Built-in plugin: the core's objects, probes, scans and models, registered through the same hooks a
third-party plugin uses."""

from __future__ import annotations

from ptycho_cli.hookspecs import hookimpl


@hookimpl
def ptycho_objects():
    from ptycho.builtins import builtin_object_specs

    return builtin_object_specs()


@hookimpl
def ptycho_probes():
    from ptycho.builtins import builtin_probe_specs

    return builtin_probe_specs()


@hookimpl
def ptycho_scans():
    from ptycho.builtins import builtin_scan_specs

    return builtin_scan_specs()


@hookimpl
def ptycho_models():
    from ptycho.builtins import builtin_model_specs

    return builtin_model_specs()
