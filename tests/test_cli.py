"""The CLI shell: plugins (built-in, in-process, entry points, broken, disabled), config
precedence, exit codes, and a TensorFlow-free start-up."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from importlib import metadata

import numpy as np
import pydantic
import pytest
import typer

from ptycho import __version__
from ptycho_cli import CommandSpec, ObjectSpec, hookimpl
from ptycho_cli.api import ConfigFiles
from ptycho_cli.app import build_app
from ptycho_cli.plugins import get_plugin_manager

BUILTIN_COMMANDS = {"simulate", "train", "infer", "stitch", "evaluate", "export-ptychodus", "debug-ab", "import", "plugins"}


def _rings(size, rng, config, arg):
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    return 0.5 * (1 + np.cos(r / 2.0))


def _hello(name: str = typer.Option("world", "--name")) -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


class RingsPlugin:
    __name__ = "rings-plugin"

    @hookimpl
    def ptycho_objects(self):
        return [ObjectSpec("rings", _rings, "concentric rings")]

    @hookimpl
    def ptycho_commands(self):
        return [CommandSpec("hello", _hello)]


def test_version(invoke):
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"ptycho {__version__}"


def test_help_lists_every_builtin_command(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    for name in BUILTIN_COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"], ["simulate", "--help"]])
def test_light_commands_never_import_tensorflow_or_scipy(args):
    code = textwrap.dedent(
        f"""
        import sys
        from ptycho_cli.app import main
        rc = main({args!r})
        assert "tensorflow" not in sys.modules, "TensorFlow was imported"
        assert "scipy" not in sys.modules, "SciPy was imported"
        sys.exit(rc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_plugins_json_lists_builtins_with_what_they_provide(invoke):
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    provided = {c for p in data["plugins"] for c in p["provides"].get("commands", [])}
    assert provided == BUILTIN_COMMANDS
    physics = next(p for p in data["plugins"] if p["name"] == "builtin.physics")
    assert set(physics["provides"]["objects"]) >= {"lines", "grf", "points", "diagonals", "siemens", "image"}
    assert physics["version"] == __version__
    assert data["broken"] == []


def test_in_process_plugin_adds_an_object_type_and_a_command(invoke, tmp_path):
    result = invoke("hello", "--name", "ptycho", plugins=[RingsPlugin()])
    assert result.exit_code == 0 and result.stdout.strip() == "hello ptycho"
    host = get_plugin_manager(plugins=[RingsPlugin()], load_entry_points=False, env={})
    assert "rings" in host.components().objects
    out = tmp_path / "rings.npz"
    result = invoke("simulate", "--object", "rings", "--N", "16", "--size", "40", "--n-images", "4",
                    "--no-preview", "--out", out, "--quiet", plugins=[RingsPlugin()])
    assert result.exit_code == 0, result.output
    from ptycho.io.datasets import load_dataset

    with load_dataset(out) as ds:
        amp = np.abs(ds.object)
        expected = 0.6 + 0.4 * _rings(40, None, None, None)
        np.testing.assert_allclose(amp, expected, rtol=1e-5)


class _FakeEntryPoint:
    def __init__(self, name, obj=None, error=None):
        self.name, self._obj, self._error, self.dist = name, obj, error, None

    def load(self):
        if self._error:
            raise self._error
        return self._obj


def test_entry_point_plugins_load_and_broken_ones_are_reported_and_skipped(runner):
    good = types.ModuleType("good_plugin")
    good.ptycho_commands = hookimpl(lambda: [CommandSpec("hello", _hello)])
    misspelt = types.ModuleType("typo_plugin")
    misspelt.ptycho_objectz = hookimpl(lambda: [])
    raising = types.ModuleType("raising_plugin")

    def boom():
        raise RuntimeError("kaput")

    raising.ptycho_scans = hookimpl(boom)
    eps = [
        _FakeEntryPoint("good", good),
        _FakeEntryPoint("broken", error=ImportError("No module named 'nowhere'")),
        _FakeEntryPoint("typo", misspelt),
        _FakeEntryPoint("raising", raising),
    ]
    host = get_plugin_manager(entry_points=eps, env={})
    app = build_app(host)
    result = runner.invoke(app, ["hello"])
    assert result.exit_code == 0 and "hello world" in result.stdout
    assert "random" in host.components().scans  # the raising plugin did not take scans down
    reasons = {b.name: b.reason for b in host.broken}
    assert "No module named 'nowhere'" in reasons["broken"]
    assert "ptycho_objectz" in reasons["typo"]
    assert "kaput" in reasons["raising"]
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0


def test_disable_plugins_env_removes_a_plugin_command(runner):
    good = types.ModuleType("good_plugin")
    good.ptycho_commands = hookimpl(lambda: [CommandSpec("hello", _hello)])
    eps = [_FakeEntryPoint("good", good)]
    app = build_app(get_plugin_manager(entry_points=eps, env={"PTYCHO_DISABLE_PLUGINS": "good"}))
    result = runner.invoke(app, ["hello"])
    assert result.exit_code == 2
    app = build_app(get_plugin_manager(entry_points=eps, env={"PTYCHO_DISABLE_PLUGINS": "builtin.stitch"}))
    assert "stitch" not in runner.invoke(app, ["--help"]).output


def test_installed_entry_points_group_is_ptycho():
    """Every study plugin of this repository (installed by scripts/test.sh) is found through the
    real entry-point lookup of the group ``ptycho``."""
    import tomllib
    from pathlib import Path

    declared = set()
    for pyproject in (Path(__file__).resolve().parents[1] / "plugins").glob("*/pyproject.toml"):
        declared |= set(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["entry-points"]["ptycho"])
    assert declared and declared <= {ep.name for ep in metadata.entry_points(group="ptycho")}


def test_command_name_conflict_is_reported_not_fatal(invoke):
    clash = types.ModuleType("clash")
    clash.ptycho_commands = hookimpl(lambda: [CommandSpec("simulate", _hello)])
    host = get_plugin_manager(plugins=[clash], load_entry_points=False, env={})
    names = [spec.name for _, spec in host.commands()]
    assert names.count("simulate") == 1
    # only the clashing record is dropped: the plugin is not "skipped", and the way to prefer it
    # is to disable the plugin that won
    assert host.broken == []
    (clash_record,) = host.clashes
    assert (clash_record.plugin, clash_record.record, clash_record.winner) == ("clash", "simulate", "builtin.simulate")
    assert "ignored" in clash_record.message() and "PTYCHO_DISABLE_PLUGINS=builtin.simulate" in clash_record.message()


class _LevelConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    level: int = 0


def _level_command(config: ConfigFiles = None) -> None:
    """Print the resolved ``mytool.level``."""
    from ptycho_cli.api import resolve_config

    typer.echo(f"level={resolve_config(_LevelConfig, 'mytool', files=config or ()).level}")


def _level_plugin(section: str | None) -> types.SimpleNamespace:
    plugin = types.SimpleNamespace()
    plugin.ptycho_commands = hookimpl(lambda: [CommandSpec("level", _level_command, config_section=section)])
    return plugin


@pytest.mark.parametrize("declared", [True, False])
def test_a_plugins_declared_config_section_is_skipped_by_other_commands(invoke, tmp_path, declared):
    shared = tmp_path / "study.yaml"
    shared.write_text("mytool:\n  level: 3\n")
    plugins = [_level_plugin("mytool" if declared else None)]
    result = invoke("level", "--config", shared, plugins=plugins)
    assert result.exit_code == 0 and "level=3" in result.output, result.output
    result = invoke("simulate", "--config", shared, "--N", "32", "--n-images", "4", "--size", "64",
                    "--no-preview", "--quiet", "--out", tmp_path / "d.npz", plugins=plugins)
    if declared:  # a file sectioned for another command: simulate runs on its defaults
        assert result.exit_code == 0, result.output
        assert (tmp_path / "d.npz").is_file()
    else:  # undeclared, the file reads as a flat simulate config with an unknown field
        assert result.exit_code == 2 and "simulate.mytool" in result.output, result.output


def test_debug_ab_skips_a_declared_plugin_section_and_still_refuses_unknown_ones(invoke, tmp_path):
    shared = tmp_path / "study.yaml"
    shared.write_text("mytool: {level: 3}\nsimulation: {N: 32}\n")
    result = invoke("debug-ab", "base", "base", "--config", shared, plugins=[_level_plugin("mytool")])
    assert result.exit_code == 2 and "unknown section 'simulation'" in result.output, result.output
    assert "'mytool'" not in result.output


def test_config_sections_are_passed_in_not_looked_up(tmp_path):
    """resolve_config reads no command-line context: the caller says which top-level keys are
    sections, and the same call resolves the same way inside and outside a command."""
    from ptycho.config.stitch import StitchConfig
    from ptycho.errors import ConfigError
    from ptycho_cli.config_io import SECTIONS, resolve_config

    shared = tmp_path / "study.yaml"
    shared.write_text("mytool:\n  level: 3\n")
    assert resolve_config(StitchConfig, "stitch", files=[shared], sections=(*SECTIONS, "mytool")) == StitchConfig()
    with pytest.raises(ConfigError, match="mytool"):  # without it, the file reads as flat stitch settings
        resolve_config(StitchConfig, "stitch", files=[shared])
