"""Shared base for every configuration model: strict, immutable, validated once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A Pydantic model that forbids unknown keys and is immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def to_plain(value: Any) -> Any:
    """A config (or any nested value) as plain YAML/JSON-friendly data: models to dicts, paths
    to strings, tuples to lists; infinities stay floats (YAML writes ``.inf``)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value
