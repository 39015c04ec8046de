"""Neighbour groups of scan positions (docs/model.md#grouping): KD-tree groups of ``C = gridsize²`` members with a
deterministic channel order, consistent centroids and offsets, one code path for every scan."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptycho.config.physics import ScanConfig
from ptycho.data.grouping import Groups, make_groups
from ptycho.errors import ConfigError, DataError
from ptycho.physics.scan import grid_scan, random_scan

N = 32
OBJECT_SHAPE = (160, 160)
POSITION_ATOL = 1e-9
"""float64 positions: centroid + offset reproduces a member position to rounding."""
DISTANCE_ATOL = 1e-9


def random_positions(M=60, seed=0):
    x, y = random_scan(OBJECT_SHAPE, N, ScanConfig(kind="random", n_images=M), np.random.default_rng(seed))
    return x, y


def grid_positions(M=49):
    x, y = grid_scan(OBJECT_SHAPE, N, ScanConfig(kind="grid", n_images=M), np.random.default_rng(0))
    return x, y


def assert_valid_groups(groups: Groups, x, y, gridsize, n_groups=None, neighbors=None):
    """Shape, distinct members, centroid/offset consistency, angle order, and each group drawn
    from the ``K`` nearest neighbours of one of its members (the seed)."""
    C = gridsize**2
    K = C if neighbors is None else neighbors
    G = len(x) if n_groups is None else n_groups
    assert groups.index.shape == (G, C) and groups.index.dtype == np.int64
    assert groups.C == C and groups.n_groups == G
    assert groups.index.min() >= 0 and groups.index.max() < len(x)
    assert all(len(set(row)) == C for row in groups.index), "a group holds a position twice"
    # centroid + offset = member position; the centroid is the members' mean
    gx, gy = groups.positions()
    np.testing.assert_allclose(gx, x[groups.index], atol=POSITION_ATOL, rtol=0)
    np.testing.assert_allclose(gy, y[groups.index], atol=POSITION_ATOL, rtol=0)
    np.testing.assert_allclose(groups.offset_x.sum(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(groups.offset_y.sum(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(groups.centroid_x, x[groups.index].mean(axis=1), atol=POSITION_ATOL, rtol=0)
    assert groups.max_offset == pytest.approx(max(np.abs(groups.offset_x).max(), np.abs(groups.offset_y).max()))
    if C > 1:
        # channel order: counter-clockwise by angle about the centroid
        angle = np.arctan2(groups.offset_y, groups.offset_x)
        assert np.all(np.diff(angle, axis=1) >= 0), "members are not ordered by angle"
        # some member (the seed) has every other member among its K nearest positions
        tree = cKDTree(np.stack([x, y], axis=1))
        dist, _ = tree.query(np.stack([x, y], axis=1), k=min(K, len(x)))
        radius = dist[:, -1]  # distance to the K-th nearest (itself included)
        for row in groups.index:
            d = np.hypot(x[row][:, None] - x[row][None, :], y[row][:, None] - y[row][None, :])
            assert np.any(np.all(d <= radius[row][:, None] + DISTANCE_ATOL, axis=1)), (
                f"group {row} is not within the {K} nearest of any member"
            )


@pytest.mark.parametrize("gridsize", [1, 2, 3])
@pytest.mark.parametrize("scan", ["random", "grid"])
def test_groups_are_valid_for_grid_and_random_scans(scan, gridsize):
    """Grid and random scans go through the same ``make_groups``; both give valid groups."""
    x, y = random_positions() if scan == "random" else grid_positions()
    groups = make_groups(x, y, gridsize)
    assert_valid_groups(groups, x, y, gridsize)
    if gridsize == 1:
        np.testing.assert_array_equal(groups.index[:, 0], np.arange(len(x)))
        assert groups.max_offset == 0.0


def test_default_groups_are_the_seed_and_its_nearest_neighbours():
    x, y = random_positions()
    groups = make_groups(x, y, 2)
    _, nearest = cKDTree(np.stack([x, y], axis=1)).query(np.stack([x, y], axis=1), k=4)
    # one group per position (seed i), holding exactly its 4 nearest positions
    for i, row in enumerate(groups.index):
        assert set(row) == set(nearest[i])


def test_same_input_gives_the_same_groups():
    x, y = random_positions()
    a = make_groups(x, y, 2, n_groups=20, neighbors=7, seed=3)
    b = make_groups(x.copy(), y.copy(), 2, n_groups=20, neighbors=7, seed=3)
    for field in ("index", "centroid_x", "centroid_y", "offset_x", "offset_y"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("gridsize", [2, 3])
def test_permuted_positions_give_the_same_groups_up_to_relabelling(gridsize):
    """Channel order depends only on geometry: group of seed ``perm[j]`` before is group ``j``
    after, member for member, once indices are mapped back."""
    x, y = random_positions(seed=5)
    perm = np.random.default_rng(1).permutation(len(x))
    before = make_groups(x, y, gridsize)
    after = make_groups(x[perm], y[perm], gridsize)
    np.testing.assert_array_equal(perm[after.index], before.index[perm])
    np.testing.assert_allclose(after.offset_x, before.offset_x[perm], atol=POSITION_ATOL)
    np.testing.assert_allclose(after.offset_y, before.offset_y[perm], atol=POSITION_ATOL)
    np.testing.assert_allclose(after.centroid_x, before.centroid_x[perm], atol=POSITION_ATOL)


def test_channel_order_is_by_angle_about_the_centroid():
    """Four corners of a square given in a scrambled order come out counter-clockwise from −x."""
    x = np.array([10.0, 0.0, 10.0, 0.0])
    y = np.array([0.0, 10.0, 10.0, 0.0])
    groups = make_groups(x, y, 2, n_groups=1, seed=0)
    # angles about (5, 5): (0,0) −135°, (10,0) −45°, (10,10) 45°, (0,10) 135°
    np.testing.assert_array_equal(groups.index[0], [3, 0, 2, 1])
    np.testing.assert_allclose(groups.offset_x[0], [-5, 5, 5, -5])
    np.testing.assert_allclose(groups.offset_y[0], [-5, -5, 5, 5])


def test_n_groups_subsamples_distinct_seeds():
    x, y = random_positions()
    groups = make_groups(x, y, 2, n_groups=15, seed=0)
    assert_valid_groups(groups, x, y, 2, n_groups=15)
    assert len({tuple(sorted(r)) for r in groups.index}) > 1
    other = make_groups(x, y, 2, n_groups=15, seed=1)
    assert not np.array_equal(groups.index, other.index), "the seed does not change the subsample"


def test_neighbors_draws_members_from_the_k_nearest():
    x, y = random_positions()
    plain = make_groups(x, y, 2)
    assert np.array_equal(make_groups(x, y, 2, neighbors=4).index, plain.index), "K = C must be the default"
    wide = make_groups(x, y, 2, neighbors=8, seed=0)
    assert_valid_groups(wide, x, y, 2, neighbors=8)
    assert not np.array_equal(wide.index, plain.index), "K > C must draw other members"
    with pytest.raises(ConfigError, match="neighbors"):
        make_groups(x, y, 2, neighbors=3)


def test_more_groups_than_positions_needs_oversampling():
    x, y = random_positions(M=30)
    with pytest.raises(ConfigError, match="oversampl"):
        make_groups(x, y, 2, n_groups=45)
    groups = make_groups(x, y, 2, n_groups=45, neighbors=8, oversample=True)
    assert_valid_groups(groups, x, y, 2, n_groups=45, neighbors=8)
    assert len({tuple(sorted(r)) for r in groups.index}) > 30, "oversampled groups are mostly repeats"


def test_bad_grouping_requests_are_refused():
    x, y = random_positions(M=3)
    with pytest.raises(DataError, match="at least 4"):
        make_groups(x, y, 2)
    with pytest.raises(ConfigError, match="gridsize"):
        make_groups(x, y, 0)
    with pytest.raises(DataError, match="empty"):
        make_groups(np.zeros(0), np.zeros(0), 1)
