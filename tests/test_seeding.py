"""Seed streams (``ptycho.seeding``): one generator per purpose, distinct for distinct purposes,
and unchanged for the purposes existing data were drawn with."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho.seeding import purpose_tag, seed_stream


def draws(seed, purpose, *keys):
    return seed_stream(seed, purpose, *keys).integers(0, 2**62, 4)


def test_same_seed_and_purpose_give_the_same_draws():
    np.testing.assert_array_equal(draws(3, "noise", 1, 0), draws(3, "noise", 1, 0))


@pytest.mark.parametrize("a,b", [("noise", "scan"), ("training-a", "training-b"), ("abcdefgh", "abcdefghX")])
def test_distinct_purposes_give_distinct_streams(a, b):
    """Purposes sharing their first 8 bytes differ too (the tag is not truncated)."""
    assert purpose_tag(a) != purpose_tag(b)
    assert not np.array_equal(draws(0, a), draws(0, b))


def test_keys_and_seeds_select_their_own_streams():
    assert not np.array_equal(draws(0, "noise", 1), draws(0, "noise", 2))
    assert not np.array_equal(draws(0, "noise"), draws(1, "noise"))


@pytest.mark.parametrize("purpose", ["object", "scan", "noise", "groups", "split", "shuffle"])
def test_the_streams_existing_data_were_drawn_with_are_unchanged(purpose):
    """Short purposes keep the encoding every committed dataset and benchmark was made with."""
    tag = int.from_bytes(purpose.encode()[:8].ljust(8, b"\0"), "little")
    expected = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, tag, 2]))).integers(0, 2**62, 4)
    np.testing.assert_array_equal(draws(7, purpose, 2), expected)


@pytest.mark.parametrize("purpose", ["", "a\0b"])
def test_an_empty_or_nul_purpose_is_refused(purpose):
    with pytest.raises(ValueError, match="non-empty string without NUL"):
        seed_stream(0, purpose)
