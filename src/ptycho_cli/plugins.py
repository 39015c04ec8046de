"""The plugin manager factory and a typed facade over it.

Built-in commands and physics parts are plugins registered exactly like third-party ones.
Third-party plugins come from the entry-point group ``ptycho``. A plugin that fails to import,
implements a misspelt hook, or raises from a hook is reported once and skipped; it never breaks
``ptycho --help``. ``PTYCHO_DISABLE_PLUGINS=a,b`` blocks plugins by name.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from ptycho_cli import hookspecs
from ptycho_cli.plugin_checks import BadHookResult, checked_records
from ptycho_cli.specs import CommandSpec

ENTRY_POINT_GROUP = "ptycho"
DISABLE_ENV = "PTYCHO_DISABLE_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "ptycho_cli.commands.physics",
    "ptycho_cli.commands.simulate",
    "ptycho_cli.commands.train",
    "ptycho_cli.commands.infer",
    "ptycho_cli.commands.stitch",
    "ptycho_cli.commands.evaluate",
    "ptycho_cli.commands.export_ptychodus",
    "ptycho_cli.commands.debug_ab",
    "ptycho_cli.commands.import_data",
    "ptycho_cli.commands.plugins",
)

COMPONENT_HOOKS = {
    "objects": "ptycho_objects",
    "probes": "ptycho_probes",
    "scans": "ptycho_scans",
    "models": "ptycho_models",
    "variants": "ptycho_ab_variants",
    "importers": "ptycho_importers",
}


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin, or one of its hooks, that was skipped, and why (``detail``: the traceback)."""

    name: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Clash:
    """A record a plugin provides under a name another plugin registered first: only that record
    is dropped, the plugin itself works."""

    plugin: str
    kind: str
    record: str
    winner: str

    def message(self) -> str:
        return (f"plugin '{self.plugin}': {self.kind} '{self.record}' ignored, '{self.winner}' provides it "
                f"already (to use '{self.plugin}''s, set {DISABLE_ENV}={self.winner})")


@dataclass
class PluginHost:
    """What commands see of the plugin system (``ctx.obj``): commands, components, reports."""

    pm: pluggy.PluginManager
    broken: list[BrokenPlugin] = field(default_factory=list)
    clashes: list[Clash] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    verbose: bool = False
    echo: Callable[[str], None] | None = None
    """Set once the app is built: problems found later (during a run) are printed at once."""

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call one hook plugin by plugin, so a failing plugin is reported and skipped."""
        results: list[tuple[str, Any]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                records = checked_records(hook_name, impl.function())
            except BadHookResult as exc:
                self._report(impl.plugin_name, f"{exc}; its {hook_name} records are ignored")
                continue
            except Exception as exc:  # noqa: BLE001 - a plugin's failure must not break the host
                self._report(impl.plugin_name, f"hook {hook_name} raised {type(exc).__name__}: {exc}",
                             traceback.format_exc())
                continue
            results.extend((impl.plugin_name, record) for record in records)
        return results

    def _report(self, name: str, reason: str, detail: str = "") -> None:
        if not any(b.name == name and b.reason == reason for b in self.broken):
            self.broken.append(BrokenPlugin(name, reason, detail))
            self._print(f"warning: plugin '{name}' skipped: {reason} (set {DISABLE_ENV}={name} to silence)")

    def _clash(self, clash: Clash) -> None:
        if clash not in self.clashes:
            self.clashes.append(clash)
            self._print(f"warning: {clash.message()}")

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self._print(f"warning: {message}")

    def _print(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    def report_lines(self) -> list[str]:
        """Every problem found so far, one line each (what the app prints when it is built)."""
        return ([f"warning: plugin '{b.name}' skipped: {b.reason} (set {DISABLE_ENV}={b.name} to silence)"
                 for b in self.broken] + [f"warning: {c.message()}" for c in self.clashes]
                + [f"warning: {w}" for w in self.warnings])

    def _first_wins(self, kind: str, entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        seen: dict[str, str] = {}
        kept = []
        for plugin, spec in entries:
            if spec.name in seen:
                self._clash(Clash(plugin, kind, spec.name, seen[spec.name]))
                continue
            seen[spec.name] = plugin
            kept.append((plugin, spec))
        return kept

    def commands(self) -> list[tuple[str, CommandSpec]]:
        """``(plugin name, spec)`` for every command, first registration of a name wins."""
        return self._first_wins("command", self._collect("ptycho_commands"))

    def config_sections(self) -> tuple[str, ...]:
        """Every top-level key of a shared config file: the built-in commands' and those the
        plugins' commands declare (``CommandSpec.config_section``)."""
        from ptycho_cli.config_io import SECTIONS

        declared = [spec.config_section for _, spec in self.commands() if spec.config_section]
        return tuple(dict.fromkeys([*SECTIONS, *declared]))

    def component_specs(self) -> dict[str, list[tuple[str, Any]]]:
        """``{"objects": [(plugin, spec), …], …}`` with name conflicts reported and skipped."""
        return {kind: self._first_wins(kind[:-1], self._collect(hook_name))
                for kind, hook_name in COMPONENT_HOOKS.items()}

    def components(self) -> Any:
        """The :class:`ptycho.registry.Components` the workflows receive."""
        from ptycho.registry import Components

        specs = self.component_specs()
        return Components.from_specs(**{k: [s for _, s in v] for k, v in specs.items()})

    def plugin_names(self) -> list[str]:
        return [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]


def builtin_name(module_name: str) -> str:
    """``ptycho_cli.commands.simulate`` → ``builtin.simulate`` (the name users see and block)."""
    return "builtin." + module_name.rsplit(".", 1)[-1]


def _disabled_names(env: Mapping[str, str]) -> set[str]:
    return {n.strip() for n in env.get(DISABLE_ENV, "").split(",") if n.strip()}


def _unknown_hooks(module: Any) -> list[str]:
    """Functions marked ``@hookimpl`` whose name matches no hookspec (misspelt hooks); an unmarked
    helper that happens to start with ``ptycho_`` is not a hook and not reported."""
    known = {name for name in dir(hookspecs) if name.startswith("ptycho_")}
    marker = f"{hookspecs.PROJECT}_impl"
    return [
        name
        for name in dir(module)
        if name.startswith("ptycho_") and name not in known and hasattr(getattr(module, name), marker)
    ]


def _register(host: PluginHost, plugin: Any, name: str) -> None:
    unknown = _unknown_hooks(plugin)
    if unknown:
        host._report(name, f"unknown hook(s) {', '.join(unknown)}; check the spelling against `ptycho plugins`")
        return
    try:
        host.pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001
        host._report(name, f"cannot register: {exc}")


def get_plugin_manager(
    *,
    plugins: Iterable[Any] = (),
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    load_entry_points: bool = True,
    env: Mapping[str, str] | None = None,
) -> PluginHost:
    """Build a fresh plugin manager: built-ins, then entry points, then ``plugins`` (in-process).

    Parameters
    ----------
    plugins : modules or objects with ``@hookimpl`` functions, registered last (tests use this).
    entry_points : override the installed entry points (tests fake them with this).
    load_entry_points : set False to skip third-party plugins entirely.
    env : environment to read ``PTYCHO_DISABLE_PLUGINS`` from (default ``os.environ``).
    """
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    disabled = _disabled_names(env)
    for name in disabled:
        pm.set_blocked(name)

    seen: set[str] = set()  # every name a plugin can be blocked by
    for module_name in BUILTIN_PLUGINS:
        name = builtin_name(module_name)
        seen.add(name)
        if name in disabled:
            continue
        _register(host, importlib.import_module(module_name), name)

    if load_entry_points:
        eps = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in eps:
            dist_name = getattr(getattr(ep, "dist", None), "name", None)
            seen.update(n for n in (ep.name, dist_name) if n)
            if ep.name in disabled or (dist_name and dist_name in disabled):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - report and skip broken third-party code
                host._report(ep.name, f"failed to load ({type(exc).__name__}: {exc})", traceback.format_exc())
                continue
            _register(host, plugin, ep.name)
            if dist_name and ep.dist is not None:
                host.versions[ep.name] = ep.dist.version

    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin)}"
        seen.add(name)
        if name in disabled:
            continue
        _register(host, plugin, name)
    unknown = sorted(disabled - seen)
    if unknown:
        host._warn(f"{DISABLE_ENV} names {', '.join(repr(n) for n in unknown)}, which no installed plugin is "
                   f"called (known: {', '.join(sorted(seen))})")
    return host


def describe_plugins(host: PluginHost) -> list[dict[str, Any]]:
    """One record per plugin: name, version, hooks, and what it provides (for ``ptycho plugins``)."""
    from ptycho import __version__

    provided: dict[str, dict[str, list[str]]] = {}
    for plugin, spec in host.commands():
        provided.setdefault(plugin, {}).setdefault("commands", []).append(spec.name)
    for kind, entries in host.component_specs().items():
        for plugin, spec in entries:
            provided.setdefault(plugin, {}).setdefault(kind, []).append(spec.name)
    records = []
    for name, plugin in host.pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in host.pm.get_hookcallers(plugin) or [])
        builtin = name.startswith("builtin.")
        records.append(
            {
                "name": name,
                "version": __version__ if builtin else host.versions.get(name, "unknown"),
                "builtin": builtin,
                "hooks": hooks,
                "provides": provided.get(name, {}),
            }
        )
    return records
