"""YAML for settings, with the expansion of aliases bounded.

``yaml.safe_load`` expands every alias: a few hundred bytes of nested aliases (the "billion
laughs") become gigabytes of lists and minutes of work. A settings file has no use for that, so the
document is composed first (aliases stay shared nodes), its expanded size counted without building
it, and only a document below :data:`MAX_VALUES` values is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

from ptycho.errors import ConfigError

MAX_VALUES = 100_000
"""Scalars, lists and mappings a settings document may expand to (a real config holds < 1,000)."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values ``node`` expands to, each shared (aliased) node counted as often as it is used."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:  # an alias of an enclosing node: infinite expansion
        return MAX_VALUES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_VALUES:
            break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def load_settings(text: str, where: str) -> Any:
    """Parse one YAML document of settings, refusing one that expands beyond :data:`MAX_VALUES`.

    Raises
    ------
    yaml.YAMLError
        Malformed YAML (the caller words it).
    ConfigError
        Alias expansion beyond the limit (exit code 2).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_VALUES:
            raise ConfigError(f"{where}: the YAML expands to more than {MAX_VALUES} values through aliases "
                              "(&name / *name); a settings file needs no such expansion, write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()
