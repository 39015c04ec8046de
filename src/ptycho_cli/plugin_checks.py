"""What a registration hook must return, checked plugin by plugin before the host uses it.

A hook returns an iterable of records of one type (``ptycho_objects`` → :class:`ObjectSpec` …).
A plugin whose hook returns something else (a string, a single record, records of another hook,
a record without a name or with a non-callable function) has that hook's contribution refused
with a one-line reason naming the plugin; the other plugins, and the plugin's other hooks, work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ptycho_cli.specs import CommandSpec, ImporterSpec, ModelSpec, ObjectSpec, ProbeSpec, ScanSpec, VariantSpec

EXPECTED_RECORDS: dict[str, tuple[type, str | None]] = {
    "ptycho_commands": (CommandSpec, "callback"),
    "ptycho_objects": (ObjectSpec, "generate"),
    "ptycho_probes": (ProbeSpec, "make"),
    "ptycho_scans": (ScanSpec, "make"),
    "ptycho_models": (ModelSpec, "build"),
    "ptycho_ab_variants": (VariantSpec, None),
    "ptycho_importers": (ImporterSpec, "read"),
}
"""Hook → (record type, the record's callable field)."""


class BadHookResult(ValueError):
    """A hook returned what its specification does not allow (the message says what)."""


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '…' if len(text) > 40 else text}"


def checked_records(hook_name: str, returned: Any) -> list[Any]:
    """The records of ``returned`` (what one plugin's ``hook_name`` gave back), checked.

    Raises
    ------
    BadHookResult
        ``returned`` is not an iterable of the hook's record type, or a record is malformed.
    """
    if returned is None:
        return []
    if hook_name not in EXPECTED_RECORDS:  # a hook this table does not know: no type to check
        return list(returned)
    record_type, function = EXPECTED_RECORDS[hook_name]
    if isinstance(returned, (str, bytes)) or isinstance(returned, record_type) or not isinstance(returned, Iterable):
        raise BadHookResult(f"hook {hook_name} returned {_describe(returned)}; expected a list of "
                            f"{record_type.__name__} records")
    records = list(returned)
    for record in records:
        if not isinstance(record, record_type):
            raise BadHookResult(f"hook {hook_name} returned a {type(record).__name__}; expected "
                                f"{record_type.__name__} records only")
        name = getattr(record, "name", None)
        if not isinstance(name, str) or not name or ":" in name or name != name.strip():
            raise BadHookResult(f"hook {hook_name}: a {record_type.__name__} has the name {name!r}; expected a "
                                "non-empty name without ':' or surrounding spaces")
        if function and not callable(getattr(record, function, None)):
            raise BadHookResult(f"hook {hook_name}: {record_type.__name__} '{name}' has a {function} that is not "
                                "callable")
        if record_type is VariantSpec and not isinstance(record.settings, Mapping):
            raise BadHookResult(f"hook {hook_name}: VariantSpec '{name}' has settings of type "
                                f"{type(record.settings).__name__}; expected a mapping of dotted keys to values")
    return records
