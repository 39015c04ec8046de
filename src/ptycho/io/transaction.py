"""All-or-nothing replacement of a set of files in one directory (model-bundle checkpoints).

A folder holds a *committed* set of files, the last of which is the commit file (a manifest that
lists the others). A new set is written in three moves, each safe to interrupt at any point:

1. every file is written into a private staging folder ``FOLDER/.staging-{pid}-{hex}/``, the
   commit file last; a kill here leaves the committed set untouched (and a stale staging
   folder, removed by the next writer);
2. the staging folder is renamed to ``FOLDER/.pending/`` in one ``rename``: from this instant the
   new set is the committed one;
3. the files are moved from ``.pending/`` to ``FOLDER/`` one by one, the commit file last, then
   owned names the new set lacks are removed and ``.pending/`` with them.

Readers never see a mixture: while ``.pending/`` holds a commit file, the committed version of
``name`` is ``.pending/name`` if it is still there, else ``FOLDER/name`` (already moved). Reading
needs no write access; the next writer finishes an interrupted step 3 before it starts.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ptycho.io.atomic import is_stale_temp_name

__all__ = ["PENDING", "commit_files", "committed_path", "finish_pending", "has_commit", "STAGING_PREFIX"]

PENDING = ".pending"
STAGING_PREFIX = ".staging-"


def _pending_commit(folder: Path, commit_file: str) -> Path | None:
    pending = folder / PENDING
    return pending if (pending / commit_file).is_file() else None


def committed_path(folder: str | os.PathLike[str], name: str, commit_file: str) -> Path:
    """Where the committed version of ``name`` lives now (``.pending/name`` or ``FOLDER/name``).

    Parameters
    ----------
    folder : path-like
        The folder holding the committed set.
    name : str
        A file name of the set (``commit_file`` included).
    commit_file : str
        The name of the set's commit file (written and moved last).
    """
    folder = Path(folder)
    pending = _pending_commit(folder, commit_file)
    if pending is not None and (pending / name).exists():
        return pending / name
    return folder / name


def has_commit(folder: str | os.PathLike[str], commit_file: str) -> bool:
    """True when ``folder`` holds a committed set (installed or pending)."""
    return committed_path(folder, commit_file, commit_file).is_file()


def _fsync(path: Path) -> None:
    """Flush a file (or a directory entry list) to disk, so that a rename after it publishes data
    that survive a crash of the machine, not only of the process."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync directories; the rename order still protects a kill
    finally:
        os.close(fd)


def finish_pending(folder: str | os.PathLike[str], commit_file: str) -> None:
    """Complete an interrupted install (step 3) and remove staging folders of writers that were
    killed; idempotent, and a no-op on a folder without leftovers."""
    folder = Path(folder)
    pending = folder / PENDING
    if (pending / commit_file).is_file():
        names = sorted(p.name for p in pending.iterdir() if p.name != commit_file)
        for name in [*names, commit_file]:
            os.replace(pending / name, folder / name)
        _fsync(folder)
    if pending.is_dir():
        shutil.rmtree(pending, ignore_errors=True)
    _remove_stale_staging(folder)


def _remove_stale_staging(folder: Path) -> None:
    """Remove staging folders left by writers that no longer run (killed mid-write)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name.startswith(STAGING_PREFIX) and is_stale_temp_name(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def commit_files(
    folder: str | os.PathLike[str],
    write: Callable[[Path], Sequence[str]],
    *,
    commit_file: str,
    owned: Iterable[str],
) -> list[str]:
    """Replace the committed set of files in ``folder`` with the one ``write`` produces, all or nothing.

    Parameters
    ----------
    folder : path-like
        Created if missing.
    write : callable
        ``write(staging) -> names`` writes every file of the new set into the folder ``staging``
        and returns their names; ``commit_file`` must be among them (write it last).
    commit_file : str
        The file that makes a set complete (its manifest).
    owned : iterable of str
        Every name a set of this kind may hold: those the new set lacks are removed after the
        install, so no file of an older set outlives it (e.g. an optimizer state).

    Returns
    -------
    list of str
        The names installed.

    Notes
    -----
    An exception (``KeyboardInterrupt`` included) while ``write`` runs removes the staging folder
    and leaves the committed set as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    finish_pending(folder, commit_file)
    staging = folder / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        names = list(write(staging))
        if commit_file not in names or not (staging / commit_file).is_file():
            raise RuntimeError(f"{folder}: the new set has no {commit_file}; nothing was committed")
        for name in names:
            _fsync(staging / name)
        _fsync(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, folder / PENDING)  # the commit: from here on the new set is the one readers see
    _fsync(folder)
    finish_pending(folder, commit_file)
    for name in set(owned) - set(names):
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
    return names
