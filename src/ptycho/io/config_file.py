"""The resolved configuration written next to every output, so a run is reproducible from its
folder alone (pass that file as the command's config file)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from ptycho.config.base import to_plain
from ptycho.io.atomic import write_text_atomic


def config_path_for(output: Path) -> Path:
    """``data.h5`` → ``data.config.yaml``; a directory → ``DIR/config.yaml``."""
    output = Path(output)
    if output.suffix == "":
        return output / "config.yaml"
    return output.with_name(output.name[: -len(output.suffix)] + ".config.yaml")


def resolved_config_text(section: str, config: BaseModel) -> str:
    """``{section: config}`` as YAML, the text of a resolved-config file."""
    return yaml.safe_dump({section: to_plain(config)}, sort_keys=False)


def write_resolved_config(output: Path, section: str, config: BaseModel) -> Path:
    """Write ``{section: config}`` as YAML beside ``output``; returns the path written."""
    path = config_path_for(output)
    write_text_atomic(path, resolved_config_text(section, config))
    return path
