"""Output paths checked before any work starts: a usable name, a writable place, and never one of
the run's own inputs (an output that resolves to an input would destroy it).

Every check raises :class:`~ptycho.errors.ConfigError` (exit code 2) and touches nothing but a
probe file it creates and removes at once in the output's (nearest existing) directory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from ptycho.errors import ConfigError

__all__ = ["check_output_dir", "check_output_file", "refuse_overwriting_inputs", "same_file"]


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True if ``a`` and ``b`` name the same file: the same inode when both exist (symbolic and
    hard links included), else the same absolute path once symbolic links are resolved."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_writable_place(path: Path, what: str) -> None:
    """The directory that will hold ``path`` exists or can be created, and accepts a file."""
    absolute = Path(os.path.abspath(path))
    for parent in absolute.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{what} {path}: {parent} is a file, not a directory; choose another output path")
    where = _nearest_existing(absolute.parent)
    probe = where / f".ptycho-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{what} {path}: cannot write in {where} ({reason}); choose a writable location") from None
    try:
        probe.unlink()
    except OSError:
        pass


def check_output_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse an output file name that cannot be written: empty, an existing directory, under a
    file, or in a place that refuses new files.

    Parameters
    ----------
    path : path-like
    what : str
        How messages name it (``"output"``, ``"diffraction output"``).

    Returns
    -------
    Path
    """
    text = os.fspath(path)
    if not text.strip() or Path(text).name in ("", ".", ".."):
        raise ConfigError(f"{what} path {text!r} has no file name; give a file name such as data.h5")
    path = Path(text)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; give a file name inside it, e.g. {path / 'out.h5'}")
    _check_writable_place(path, what)
    return path


def check_output_dir(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Refuse an output directory that cannot be used: empty name, an existing file, under a
    file, or in a place that refuses new files."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{what} path is empty; give a directory name such as model/")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file; give a directory name")
    _check_writable_place(path / "x", what)
    return path


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike[str]],
                              inputs: Mapping[str, str | os.PathLike[str] | None], command: str) -> None:
    """Refuse to run if any file the run writes is one of its inputs.

    Parameters
    ----------
    outputs : path-like
        Every file the run writes (side files such as ``X.config.yaml`` included).
    inputs : mapping
        ``{role: path}`` of what the run reads (``None`` entries are skipped).
    command : str
        The command, for the message.

    Raises
    ------
    ConfigError
        Naming the output, the input role and how to fix it (exit code 2).
    """
    for out in outputs:
        for role, source in inputs.items():
            if source is not None and same_file(out, source):
                raise ConfigError(f"{command}: output {out} is the {role} it reads; writing it would destroy "
                                  "the input, choose another output name")
