"""The core names config fields in its messages, never flags; the shell prints each field as the
running command's flag (``ptycho.errors``, ``ptycho_cli.fields``)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from ptycho.errors import ConfigError, field
from ptycho_cli.errors import guard
from ptycho_cli.fields import COMMAND_FLAGS, render

CORE = Path(__file__).resolve().parents[1] / "src" / "ptycho"
WORKFLOW_ARGUMENTS = {"train.resume": ("ptycho.workflows.train", "train"),
                      "train.force": ("ptycho.workflows.train", "train")}
"""Mapped names that are keyword arguments of a workflow rather than config fields."""


def test_render_replaces_known_fields_and_unwraps_the_rest():
    message = f"stitch.crop: too big; use {field('stitch.crop')}, or set {field('stitch.lsq_iterations')}; see `N`"
    rendered = render(message, {"stitch.crop": "--crop"})
    assert rendered == "stitch.crop: too big; use --crop, or set stitch.lsq_iterations; see `N`"
    assert render(message) == "stitch.crop: too big; use stitch.crop, or set stitch.lsq_iterations; see `N`"


def test_field_refuses_what_is_not_a_dotted_path():
    assert field("train.model.N") == "`train.model.N`"
    with pytest.raises(ValueError, match="dotted"):
        field("learning-rate")


def test_guard_prints_the_commands_flag(capsys):
    import typer

    with pytest.raises(typer.Exit) as exit_info, guard(flags={"train.learning_rate": "--learning-rate"}):
        raise ConfigError(f"diverged; try a lower {field('train.learning_rate')}")
    assert exit_info.value.exit_code == 2
    assert capsys.readouterr().err.strip() == "error: diverged; try a lower --learning-rate"


def test_no_flag_text_in_the_core():
    offenders = [f"{path.relative_to(CORE)}:{n}: {line.strip()}"
                 for path in sorted(CORE.rglob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"--[A-Za-z]", line)]
    assert offenders == []


def _config_model(section):
    from ptycho.config.evaluate import EvaluateConfig
    from ptycho.config.export import ExportConfig
    from ptycho.config.importing import ImportConfig
    from ptycho.config.infer import InferConfig
    from ptycho.config.pipeline import DebugABConfig
    from ptycho.config.simulate import SimulateConfig
    from ptycho.config.stitch import StitchConfig
    from ptycho.config.train import TrainConfig

    return {"simulate": SimulateConfig, "train": TrainConfig, "infer": InferConfig, "stitch": StitchConfig,
            "evaluate": EvaluateConfig, "export": ExportConfig, "debug_ab": DebugABConfig,
            "import": ImportConfig}[section]


def _is_field(model, path):
    for name in path:
        info = getattr(model, "model_fields", {}).get(name)
        if info is None:
            return False
        model = info.annotation
    return True


@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
def test_every_mapped_flag_is_an_option_of_its_command_and_every_field_exists(command):
    import typer.main

    from ptycho_cli.app import make_app

    click_command = typer.main.get_command(make_app(env={})).commands[command]
    options = {opt for param in click_command.params for opt in (*param.opts, *param.secondary_opts)}
    for dotted, flag in COMMAND_FLAGS[command].items():
        assert flag in options, f"{command}: {flag} is not an option"
        section, *path = dotted.split(".")
        if dotted in WORKFLOW_ARGUMENTS:
            module, function = WORKFLOW_ARGUMENTS[dotted]
            assert path[-1] in inspect.signature(getattr(importlib.import_module(module), function)).parameters
        else:
            assert _is_field(_config_model(section), path), f"{dotted} is not a config field"
