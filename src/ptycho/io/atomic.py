"""Atomic file output: write to a temporary file beside the target, then rename (docs/cli.md#outputs).

An interrupted or failed run never leaves a truncated file under the final name: the data go to
``.{name}.tmp-{pid}-{random}{suffix}`` in the same directory (same filesystem, so the rename is
atomic) and are moved into place with :func:`os.replace` only when writing finished cleanly.
The temporary name keeps the target's suffix so that writers which append one (``np.savez``
adds ``.npz``) do not rename the file behind our back.

A temporary file outlives its writer only when the process is killed outright (``kill -9``);
SIGINT and SIGTERM unwind through :func:`atomic_output`, which removes it. The next writer of the
same output removes such leftovers: a temporary name carries its writer's process id, and one
whose process no longer runs on this machine is stale.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ptycho.errors import DataError

__all__ = [
    "atomic_output",
    "discard_temp",
    "json_default",
    "one_line",
    "is_stale_temp_name",
    "parse_json_metadata",
    "remove_stale_temps",
    "temp_path_for",
    "to_json",
    "write_json_atomic",
    "write_text_atomic",
]


_WRITER_PID = re.compile(r"(?:\.tmp-|^\.staging-)(\d+)-[0-9a-f]{8}")


def _process_running(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (ours, or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def is_stale_temp_name(name: str) -> bool:
    """True if ``name`` is one of our temporary names whose writing process no longer runs."""
    match = _WRITER_PID.search(name)
    return bool(match) and not _process_running(int(match.group(1)))


def _split_suffixes(final: Path) -> tuple[str, str]:
    suffixes = "".join(final.suffixes)
    stem = final.name[: len(final.name) - len(suffixes)] if suffixes else final.name
    return stem, suffixes


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of ``path`` that killed writers left beside it.

    Only names of the form ``.{stem}.tmp-{pid}-{hex}{suffixes}`` for this very output, whose
    process ``pid`` is gone, are removed; a file another running writer is producing is kept.

    Returns
    -------
    list of Path
        The files removed.
    """
    final = Path(path)
    stem, suffixes = _split_suffixes(final)
    pattern = re.compile(re.escape(f".{stem}.tmp-") + r"\d+-[0-9a-f]{8}" + re.escape(suffixes) + "$")
    removed = []
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name) and is_stale_temp_name(entry.name) and entry.is_file():
            discard_temp(entry)
            removed.append(entry)
    return removed


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary path in the directory of ``path``, keeping all its suffixes (writers
    such as Keras check for ``.weights.h5``).

    Creates the parent directory if needed, and removes stale temporary files of the same output
    (:func:`remove_stale_temps`).

    Parameters
    ----------
    path : str or path-like
        The final output path.

    Returns
    -------
    Path
        ``<dir>/.{stem}.tmp-{pid}-{random}{suffixes}``; the file itself is not created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    token = secrets.token_hex(4)
    stem, suffixes = _split_suffixes(final)
    return final.with_name(f".{stem}.tmp-{os.getpid()}-{token}{suffixes}")


def discard_temp(tmp: Path) -> None:
    """Remove a temporary file if it exists; never raises for a missing file."""
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Context manager yielding a temporary path that becomes ``path`` on success.

    Parameters
    ----------
    path : str or path-like
        Final output path. Parent directories are created.

    Yields
    ------
    Path
        Temporary path in the same directory. Write the whole file there (and close it)
        inside the ``with`` block.

    Notes
    -----
    On normal exit the temporary file is moved over ``path`` with :func:`os.replace`. On any
    exception (``KeyboardInterrupt`` included) the temporary file is removed and the exception
    re-raised; an existing file at ``path`` is left untouched.

    Examples
    --------
    >>> with atomic_output("out/result.npz") as tmp:  # doctest: +SKIP
    ...     np.savez(tmp, a=np.zeros(3))
    """
    final = Path(path)
    tmp = temp_path_for(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        discard_temp(tmp)
        raise


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays, paths, sets and complex numbers."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, complex):
        return {"real": obj.real, "imag": obj.imag}
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def json_safe(value: Any) -> Any:
    """``value`` with numpy types made plain and NaN/±inf replaced by ``None``: strict JSON, for
    results other programs read (``metrics.json``, reports), where :func:`to_json` keeps them."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise ``obj`` to JSON with sorted keys, converting numpy types.

    Non-finite floats are written as ``NaN``/``Infinity`` (Python's JSON dialect), because
    settings such as ``nphotons = inf`` are legitimate metadata.
    """
    return json.dumps(obj, indent=indent, sort_keys=True, default=json_default)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the final path."""
    final = Path(path)
    with atomic_output(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return final


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 2, sorted keys, numpy-aware) to ``path`` atomically."""
    return write_text_atomic(path, to_json(obj) + "\n")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (library messages may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_json_metadata(text: str | bytes, *, where: str) -> dict[str, Any]:
    """Parse a stored ``metadata`` JSON string into a dict.

    Raises
    ------
    DataError
        If the text is not JSON or not a JSON object.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{where}: key 'metadata' is not valid JSON ({exc.msg} at char {exc.pos})"
        ) from None
    if not isinstance(value, dict):
        raise DataError(
            f"{where}: key 'metadata' holds a JSON {type(value).__name__}; expected a JSON object"
        )
    return value
