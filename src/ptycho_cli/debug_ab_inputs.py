"""What ``ptycho debug-ab`` reads from its arguments: the two arms (variant names or files, with
their ``--a-set``/``--b-set`` overrides), the pipeline settings shared by both (config files and
``--set``), and the ``debug_ab`` section of its own settings (all of it: :func:`read_inputs`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptycho.config.pipeline import DebugABConfig
    from ptycho.debug.variants import ArmSpec

ARM_FILE_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
DEBUG_SECTION = "debug_ab"


def slug(name: str) -> str:
    if name.endswith(ARM_FILE_SUFFIXES):
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-") or "arm"


def pipeline_keys() -> set[str]:
    from ptycho.config.pipeline import PipelineConfig

    return set(PipelineConfig.model_fields)


def split_sections(data: dict[str, Any], where: str, sections: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file's ``(pipeline part, debug_ab part)``. Other commands' ``sections`` (``export``,
    a plugin's) are skipped; unknown top-level keys are an error."""
    from ptycho.errors import ConfigError

    keys = pipeline_keys()
    others = set(sections)
    pipeline: dict[str, Any] = {}
    debug: dict[str, Any] = {}
    for key, value in data.items():
        if key == DEBUG_SECTION:
            debug = dict(value or {})
        elif key in keys:
            pipeline[key] = value
        elif key not in others:
            raise ConfigError(f"{where}: unknown section '{key}'; debug-ab reads {', '.join(sorted(keys))} and {DEBUG_SECTION}")
    return pipeline, debug


def dotted_overrides(items: list[str], option: str) -> dict[str, Any]:
    """``--a-set k=v`` items as ``{dotted key: parsed value}`` over the pipeline config."""
    from ptycho.config.merge import flatten
    from ptycho.errors import ConfigError
    from ptycho_cli.config_io import parse_set

    keys = pipeline_keys()
    out: dict[str, Any] = {}
    for item in items:
        parsed = flatten(parse_set(item, ""))
        for key, value in parsed.items():
            if key.split(".", 1)[0] not in keys:
                raise ConfigError(f"{option} {item!r}: unknown key '{key}'; use a pipeline key such as "
                                  f"simulate.nphotons, train.loss (top level: {', '.join(sorted(keys))})")
            out[key] = value
    return out


def arm_spec(label: str, name: str, sets: list[str], sections: Iterable[str]) -> Any:
    """An arm from a variant name (``grid``, ``gs2+mae``, ``base``) or a YAML/TOML file of pipeline settings."""
    from ptycho.debug.variants import ArmSpec
    from ptycho.errors import ConfigError
    from ptycho_cli.config_io import read_config_file

    overrides = dotted_overrides(sets, f"--{label.lower()}-set")
    if name.endswith(ARM_FILE_SUFFIXES):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"arm {label}: variant file {name} not found")
        pipeline, debug = split_sections(read_config_file(path), f"arm {label} ({name})", sections)
        if debug:
            raise ConfigError(f"arm {label} ({name}): a variant file holds pipeline settings only; "
                              f"put the {DEBUG_SECTION} section in --config")
        return ArmSpec(label, name, overrides, pipeline, variants=())
    return ArmSpec(label, name, overrides)


def shared_settings(files: Iterable[Path], sets: Iterable[str], sections: Iterable[str]
                    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(pipeline, debug_ab, debug_sets)`` from the config files and ``--set`` items: the nested
    pipeline settings of both arms, the files' ``debug_ab`` section, and the ``debug_ab.*``
    items of ``sets`` (resolved with the command's own config)."""
    from ptycho.config.merge import deep_merge, dotted_to_nested
    from ptycho_cli.config_io import read_config_file

    sections = tuple(sections)
    pipeline: dict[str, Any] = {}
    debug_files: dict[str, Any] = {}
    for path in files:
        part, debug = split_sections(read_config_file(Path(path)), f"--config {path}", sections)
        pipeline = deep_merge(pipeline, part)
        debug_files = deep_merge(debug_files, debug)
    sets = list(sets)
    debug_sets = [s for s in sets if s.strip().startswith(DEBUG_SECTION + ".")]
    for key, value in dotted_overrides([s for s in sets if s not in debug_sets], "--set").items():
        pipeline = deep_merge(pipeline, dotted_to_nested(key, value))
    return pipeline, debug_files, debug_sets


@dataclass(frozen=True)
class DebugABInputs:
    """Everything ``ptycho debug-ab`` runs on, read from its arguments (:func:`read_inputs`)."""

    config: DebugABConfig
    arm_a: ArmSpec
    arm_b: ArmSpec
    base: dict[str, Any]
    """The nested pipeline settings both arms share."""
    out: Path
    """The report folder."""


def read_inputs(a: str, b: str, *, a_sets: list[str], b_sets: list[str], out: Path | None, files: Iterable[Path],
                sets: Iterable[str], flags: dict[str, Any], sections: Iterable[str]) -> DebugABInputs:
    """The arms ``a`` and ``b`` with their own settings, the shared settings (``--config`` files and
    ``--set`` items) and the command's ``debug_ab`` config with its typed ``flags`` (``None``: not
    given). The ``epochs`` and ``n_images`` flags set both arms' ``train.epochs`` and
    ``simulate.scan.n_images`` too, over the files and ``--set``. Without ``out`` the report goes to
    ``debug-ab-A-vs-B/``.

    Raises
    ------
    ConfigError
        An unreadable config or variant file, a misplaced section, or a bad ``key=value`` item.
    """
    from ptycho.config.merge import deep_merge, dotted_to_nested
    from ptycho.config.pipeline import DebugABConfig
    from ptycho_cli.config_io import resolve_config

    sections = tuple(sections)
    base, debug_files, debug_sets = shared_settings(files, sets, sections)
    config = resolve_config(DebugABConfig, DEBUG_SECTION, sets=debug_sets, flags=flags, base=debug_files)
    for key, flag in (("train.epochs", "epochs"), ("simulate.scan.n_images", "n_images")):
        if flags.get(flag) is not None:  # typed flags beat --config and --set (docs/cli.md#configuration)
            base = deep_merge(base, dotted_to_nested(key, flags[flag]))
    arm_a, arm_b = arm_spec("A", a, a_sets, sections), arm_spec("B", b, b_sets, sections)
    return DebugABInputs(config, arm_a, arm_b, base, out if out is not None else Path(f"debug-ab-{slug(a)}-vs-{slug(b)}"))
