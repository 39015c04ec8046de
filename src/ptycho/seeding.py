"""Seed streams: every random choice of a run comes from its one ``seed`` and a *purpose*.

Each purpose (``"object"``, ``"scan"``, ``"noise"``, ``"groups"``, ``"split"``, ``"shuffle"``, …)
gets its own generator, so drawing more of one never shifts another: changing the scan does not
change the object drawn for the same seed, and the noise of a chunk does not depend on how the
chunks are scheduled (integer ``keys`` such as the chunk number select a sub-stream).
"""

from __future__ import annotations

import hashlib

import numpy as np

SHORT_PURPOSE_BYTES = 8
"""Purposes up to this long are encoded as their own bytes (the scheme every existing stream,
and so every dataset made so far, was drawn with); longer ones are hashed."""


def purpose_tag(purpose: str) -> int:
    """The integer that stands for ``purpose`` in the seed sequence.

    A purpose of at most 8 UTF-8 bytes is its little-endian integer; a longer one is the SHA-256 of
    the whole string with bit 255 set, which no short purpose can equal. Distinct purposes thus
    give distinct tags (no truncation: ``"training-a"`` and ``"training-b"`` differ).

    Raises
    ------
    ValueError
        An empty purpose, or one containing NUL (the short encoding pads with NUL).
    """
    raw = purpose.encode()
    if not raw or b"\0" in raw:
        raise ValueError(f"a seed purpose must be a non-empty string without NUL; got {purpose!r}")
    if len(raw) <= SHORT_PURPOSE_BYTES:
        return int.from_bytes(raw, "little")
    return int.from_bytes(hashlib.sha256(raw).digest(), "little") | (1 << 255)


def seed_stream(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """An independent generator for ``purpose`` (and optional integer ``keys``) from ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, purpose_tag(purpose), *keys])))
