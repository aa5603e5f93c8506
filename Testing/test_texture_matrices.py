"""Texture matrix builders: hand-written examples, slow reference builders, property tests.

The reference builders below walk voxel by voxel in plain Python (obviously correct, slow);
the engine's vectorised builders must agree with them on random small ROIs.
"""

from __future__ import annotations

from collections import Counter, deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PySERASlicerLib.engine import texture
from PySERASlicerLib.engine.features import glcm, gldzm, glrlm, glszm, ngldm, ngtdm


def slice3d(rows):
    """One k-slice as a (1, j, i) int array."""
    return np.array(rows, dtype=np.int32)[None]


# ------------------------------------------------------------------------------------------
# Hand-written examples with expected matrices
# ------------------------------------------------------------------------------------------
def test_glcm_worked_example():
    q = slice3d([[1, 1, 2],
                 [2, 3, 1]])
    horizontal = texture.cooccurrence(q, 3, (0, 0, 1), per_slice=False)
    # pairs (1,1) (1,2) (2,3) (3,1), each counted in both orders
    np.testing.assert_array_equal(horizontal, [[2, 1, 1],
                                               [1, 0, 1],
                                               [1, 1, 0]])
    vertical = texture.cooccurrence(q, 3, (0, 1, 0), per_slice=True)
    # pairs (1,2) (1,3) (2,1)
    np.testing.assert_array_equal(vertical[0], [[0, 2, 1],
                                                [2, 0, 0],
                                                [1, 0, 0]])


def test_glcm_keeps_empty_levels():
    q = slice3d([[1, 3]])
    m = texture.cooccurrence(q, 4, (0, 0, 1), per_slice=False)
    assert m.shape == (4, 4)
    np.testing.assert_array_equal(m, [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_runs_worked_example():
    q = slice3d([[1, 1, 2, 2, 2, 0, 1]])
    level, length, k = texture.runs(q, (0, 0, 1))
    assert sorted(zip(level.tolist(), length.tolist())) == [(1, 1), (1, 2), (2, 3)]
    m2, m3, j = texture.glrlm_stacks(q, 2, need_2d=True, need_3d=False)
    np.testing.assert_array_equal(j, [1, 2, 3])
    np.testing.assert_array_equal(m2[0, 0], [[1, 1, 0],
                                             [0, 0, 1]])


def test_runs_diagonal_example():
    q = slice3d([[1, 2, 0],
                 [0, 1, 2],
                 [0, 0, 1]])
    level, length, _ = texture.runs(q, (0, 1, 1))  # down-right diagonal
    assert sorted(zip(level.tolist(), length.tolist())) == [(1, 3), (2, 2)]


def test_zones_worked_example():
    q = slice3d([[1, 1, 0],
                 [0, 2, 1],
                 [1, 0, 0]])
    zones = texture.zones(q, 2, 1, in_plane=True)
    found = sorted(zip(zones.level.tolist(), zones.size.tolist()))
    # level 1: {(0,0), (0,1), (1,2)} (diagonal link) and {(2,0)}; level 2: {(1,1)}
    assert found == [(1, 1), (1, 3), (2, 1)]
    m, j = glszm.size_zone_matrix(zones, 2, 1, per_slice=False)
    np.testing.assert_array_equal(j, [1, 3])
    np.testing.assert_array_equal(m, [[1, 1], [1, 0]])


def test_distance_zones_worked_example():
    q = np.ones((1, 5, 5), dtype=np.int32)
    q[0, 2, 2] = 2
    distance = texture.border_distance(q > 0, in_plane=True)
    np.testing.assert_array_equal(distance[0], [[1, 1, 1, 1, 1],
                                                [1, 2, 2, 2, 1],
                                                [1, 2, 3, 2, 1],
                                                [1, 2, 2, 2, 1],
                                                [1, 1, 1, 1, 1]])
    zones = texture.zones(q, 2, 1, in_plane=True)
    m, j = gldzm.distance_zone_matrix(zones, q > 0, 2, per_slice=True)
    np.testing.assert_array_equal(j, [1, 3])
    np.testing.assert_array_equal(m[0], [[1, 0], [0, 1]])  # ring of 1s at distance 1, centre 2 at 3
    # in 3D a single slice is all border (the padding lies above and below it)
    m3, j3 = gldzm.distance_zone_matrix(texture.zones(q, 2, 1, in_plane=False), q > 0, 2, per_slice=False)
    np.testing.assert_array_equal(j3, [1])
    np.testing.assert_array_equal(m3, [[1], [1]])


def test_border_distance_uses_padding():
    """An ROI filling the whole array still has its border at the array edge."""
    mask = np.ones((3, 3, 3), dtype=bool)
    distance = texture.border_distance(mask, in_plane=False)
    assert distance[1, 1, 1] == 2 and distance[0, 0, 0] == 1


def test_ngtdm_worked_example():
    q = slice3d([[1, 2],
                 [3, 4]])
    n, s = ngtdm.ngtdm_matrix(q, 4, 1, in_plane=True)
    np.testing.assert_array_equal(n[0], [1, 1, 1, 1])
    # neighbour means: 3, 8/3, 7/3, 2
    np.testing.assert_allclose(s[0], [2, 2 / 3, 2 / 3, 2])


def test_ngldm_worked_example():
    q = slice3d([[1, 1],
                 [1, 2]])
    (m, j), _ = ngldm.dependence_matrices(q, 2, 1, 0, need_2d=True, need_3d=False)
    np.testing.assert_array_equal(j, [1, 3])
    np.testing.assert_array_equal(m[0], [[0, 3],   # three 1s, each with two equal neighbours
                                         [1, 0]])  # the 2 has none


def test_ngldm_alpha_links_close_levels():
    q = slice3d([[1, 2]])
    (m, j), _ = ngldm.dependence_matrices(q, 2, 1, 1, need_2d=True, need_3d=False)
    np.testing.assert_array_equal(j, [2])
    np.testing.assert_array_equal(m[0], [[1], [1]])


# ------------------------------------------------------------------------------------------
# Slow reference builders
# ------------------------------------------------------------------------------------------
def inside(q, p):
    return all(0 <= c < n for c, n in zip(p, q.shape)) and q[p] > 0


def slow_glcm(q, n_g, offset):
    m = np.zeros((n_g, n_g), dtype=np.int64)
    for p in zip(*np.nonzero(q)):
        r = tuple(int(a + b) for a, b in zip(p, offset))
        if inside(q, r):
            m[q[p] - 1, q[r] - 1] += 1
            m[q[r] - 1, q[p] - 1] += 1
    return m


def slow_runs(q, v):
    found = Counter()
    for p in zip(*np.nonzero(q)):
        before = tuple(int(a - b) for a, b in zip(p, v))
        if inside(q, before) and q[before] == q[p]:
            continue
        length, r = 0, p
        while inside(q, r) and q[r] == q[p]:
            length += 1
            r = tuple(int(a + b) for a, b in zip(r, v))
        found[(int(q[p]), length)] += 1
    return found


def slow_zones(q, in_plane, radius=1):
    seen = np.zeros(q.shape, dtype=bool)
    found = Counter()
    w = 2 * radius + 1
    steps = [tuple(c - radius + 1 for c in s) for s in np.ndindex(w, w, w)
             if s != (radius,) * 3 and (not in_plane or s[0] == radius)]
    for start in zip(*np.nonzero(q)):
        if seen[start]:
            continue
        seen[start] = True
        todo, size = deque([start]), 0
        while todo:
            p = todo.popleft()
            size += 1
            for s in steps:
                r = tuple(int(a + b - 1) for a, b in zip(p, s))
                if inside(q, r) and not seen[r] and q[r] == q[start]:
                    seen[r] = True
                    todo.append(r)
        found[(int(q[start]), size)] += 1
    return found


def slow_neighbourhoods(q, in_plane):
    """Per ROI voxel: (level, neighbour mean or None, equal-neighbour count)."""
    out = []
    steps = [s for s in np.ndindex(3, 3, 3) if s != (1, 1, 1) and (not in_plane or s[0] == 1)]
    for p in zip(*np.nonzero(q)):
        values = []
        for s in steps:
            r = tuple(int(a + b - 1) for a, b in zip(p, s))
            if inside(q, r):
                values.append(int(q[r]))
        mean = sum(values) / len(values) if values else None
        out.append((int(q[p]), mean, sum(v == q[p] for v in values)))
    return out


small_rois = arrays(np.int32, st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
                    elements=st.integers(0, 3))


@settings(max_examples=40, deadline=None)
@given(small_rois)
def test_glcm_matches_reference(q):
    for d in texture.DIRECTIONS_3D:
        np.testing.assert_array_equal(texture.cooccurrence(q, 3, d, per_slice=False), slow_glcm(q, 3, d))
    m2, m3 = texture.glcm_stacks(q, 3, 1, need_2d=True, need_3d=True)
    for k in range(q.shape[0]):
        for n, d in enumerate(texture.DIRECTIONS_3D[:4]):
            np.testing.assert_array_equal(m2[k, n], slow_glcm(q[k:k + 1], 3, d))
    for n, d in enumerate(texture.DIRECTIONS_3D):
        np.testing.assert_array_equal(m3[n], slow_glcm(q, 3, d))


@settings(max_examples=40, deadline=None)
@given(small_rois)
def test_glcm_symmetric_and_counts_pairs(q):
    for d in texture.DIRECTIONS_3D:
        m = texture.cooccurrence(q, 3, d, per_slice=False)
        np.testing.assert_array_equal(m, m.T)
        src, dst = texture.shifted_views(q.shape, d)
        assert m.sum() == 2 * np.count_nonzero((q[src] > 0) & (q[dst] > 0))


@settings(max_examples=40, deadline=None)
@given(small_rois)
def test_runs_match_reference(q):
    for d in texture.DIRECTIONS_3D:
        level, length, _ = texture.runs(q, d)
        assert Counter(zip(level.tolist(), length.tolist())) == slow_runs(q, d)


@settings(max_examples=40, deadline=None)
@given(small_rois)
def test_run_lengths_count_every_voxel(q):
    """sum_j j r_ij = number of voxels of level i, per direction and per slice."""
    m2, m3, j = texture.glrlm_stacks(q, 3, need_2d=True, need_3d=True)
    per_level = np.bincount(q.ravel(), minlength=4)[1:]
    for m in m3:
        np.testing.assert_array_equal((m * j).sum(-1), per_level)
    for k in range(q.shape[0]):
        slice_levels = np.bincount(q[k].ravel(), minlength=4)[1:]
        for m in m2[k]:
            np.testing.assert_array_equal((m * j).sum(-1), slice_levels)


@settings(max_examples=40, deadline=None)
@given(small_rois, st.booleans())
def test_zones_match_reference(q, in_plane):
    zones = texture.zones(q, 3, 1, in_plane)
    assert Counter(zip(zones.level.tolist(), zones.size.tolist())) == slow_zones(q, in_plane)
    assert zones.size.sum() == np.count_nonzero(q)


@settings(max_examples=25, deadline=None)
@given(small_rois, st.booleans())
def test_zone_graph_path_matches_reference(q, in_plane):
    """Linkage distance 2 uses the sparse-graph builder; compare with a radius-2 flood fill."""
    labels, n_zones = texture.zone_labels(q, 3, 2, in_plane)
    level, size, _ = texture.zone_table(q, labels, n_zones)
    assert Counter(zip(level.tolist(), size.tolist())) == slow_zones(q, in_plane, radius=2)


def test_zone_distance_two_links_across_a_gap():
    q = slice3d([[1, 0, 1]])
    assert texture.zone_labels(q, 1, 1, True)[1] == 2
    assert texture.zone_labels(q, 1, 2, True)[1] == 1


@settings(max_examples=40, deadline=None)
@given(small_rois, st.booleans())
def test_neighbourhoods_match_reference(q, in_plane):
    expected = slow_neighbourhoods(q, in_plane)
    n_ref, s_ref = np.zeros(3), np.zeros(3)
    for level, mean, _ in expected:
        if mean is not None:
            n_ref[level - 1] += 1
            s_ref[level - 1] += abs(level - mean)
    n, s = ngtdm.ngtdm_matrix(q, 3, 1, in_plane)
    if in_plane:
        n, s = n.sum(0), s.sum(0)
    np.testing.assert_array_equal(n, n_ref)
    np.testing.assert_allclose(s, s_ref, atol=1e-12)
    counts = texture.equal_neighbour_counts(q, 1, 0, in_plane)
    assert sorted(counts[q > 0].tolist()) == sorted(c for _, _, c in expected)


# ------------------------------------------------------------------------------------------
# Invariance of 3D-merged features under flips and zero padding
# ------------------------------------------------------------------------------------------
def merged_3d(q, n_g):
    """3D merged/volumetric features of every texture family."""
    values = {}
    values.update(glcm.compute_from_discretised(q, n_g, 1, [s.tag for s in glcm.SPECS if s.aggregation == "3D_comb"]))
    values.update(glrlm.compute_from_discretised(q, n_g, [s.tag for s in glrlm.SPECS if s.aggregation == "3D_comb"]))
    values.update(glszm.compute_from_discretised(q, n_g, 1, [s.tag for s in glszm.SPECS if s.aggregation == "3D"]))
    values.update(gldzm.compute_from_discretised(q, n_g, q > 0, 1,
                                                 [s.tag for s in gldzm.SPECS if s.aggregation == "3D"]))
    values.update(ngtdm.compute_from_discretised(q, n_g, 1, [s.tag for s in ngtdm.SPECS if s.aggregation == "3D"]))
    values.update(ngldm.compute_from_discretised(q, n_g, 1, 0, [s.tag for s in ngldm.SPECS if s.aggregation == "3D"]))
    return values


def assert_same(a, b):
    assert a.keys() == b.keys()
    for tag in a:
        np.testing.assert_allclose(a[tag], b[tag], rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=tag)


@settings(max_examples=15, deadline=None)
@given(arrays(np.int32, st.tuples(st.integers(2, 4), st.integers(2, 5), st.integers(2, 5)),
              elements=st.integers(1, 4)),
       st.sampled_from([(0,), (1,), (2,), (0, 1, 2)]), st.integers(1, 2))
def test_merged_3d_features_invariant_under_flips_and_padding(q, axes, pad):
    base = merged_3d(q, 4)
    assert_same(base, merged_3d(np.ascontiguousarray(np.flip(q, axes)), 4))
    assert_same(base, merged_3d(np.pad(q, pad), 4))


def test_features_skip_empty_slices():
    """Slices without ROI voxels do not enter the 2D averages."""
    q = np.zeros((3, 4, 4), dtype=np.int32)
    q[1] = [[1, 2, 2, 1], [1, 1, 2, 2], [2, 2, 1, 1], [1, 2, 1, 2]]
    tags = [s.tag for s in glcm.SPECS if s.aggregation == "2D_avg"]
    assert_same(glcm.compute_from_discretised(q, 2, 1, tags), glcm.compute_from_discretised(q[1:2], 2, 1, tags))


@pytest.mark.parametrize("family", [glszm, gldzm, ngldm])
def test_count_feature_tags_unique_and_mapped(family):
    stems = [row[0] for row in family.TABLE]
    assert len(set(stems)) == len(stems)
    assert all(row[3] in texture.COUNT_FEATURES for row in family.TABLE)


@settings(max_examples=40, deadline=None)
@given(small_rois)
def test_3d_only_stacks_equal_the_3d_part_of_both(q):
    """The 3D sets skip the per-slice matrices: same 3D matrices (and run-length columns)."""
    _, m3 = texture.glcm_stacks(q, 3, 1, need_2d=True, need_3d=True)
    m2_only, m3_only = texture.glcm_stacks(q, 3, 1, need_2d=False, need_3d=True)
    assert m2_only is None
    np.testing.assert_array_equal(m3_only, m3)
    _, r3, j = texture.glrlm_stacks(q, 3, need_2d=True, need_3d=True)
    r2_only, r3_only, j_only = texture.glrlm_stacks(q, 3, need_2d=False, need_3d=True)
    assert r2_only is None
    np.testing.assert_array_equal(j_only, j)
    np.testing.assert_array_equal(r3_only, r3)


@settings(max_examples=60, deadline=None)
@given(arrays(np.intp, st.integers(0, 40), elements=st.integers(0, 3000)))
def test_occurring_values_equal_np_unique(values):
    j, index = texture.occurring_values(values)
    expected_j, expected_index = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(j, expected_j)
    np.testing.assert_array_equal(index, expected_index.reshape(-1))


@pytest.mark.parametrize("in_plane", [False, True])
def test_zone_labelling_paths_agree_for_many_levels(in_plane, monkeypatch):
    """Distance 1: per-level labelling (few levels) and the neighbour graph (many) give the same
    zones; 14 levels take the graph path by default."""
    rng = np.random.default_rng(11)
    q = rng.integers(0, 15, size=(5, 12, 13)).astype(np.int32)
    assert len(np.unique(q[q > 0])) > texture.LABEL_PER_LEVEL_MAX
    graph = texture.zones(q, 14, 1, in_plane)
    monkeypatch.setattr(texture, "LABEL_PER_LEVEL_MAX", 1000)
    per_level = texture.zones(q, 14, 1, in_plane)
    assert graph.n_zones == per_level.n_zones

    def table(zones):  # (level, size, and for in-plane zones their slice) of every zone
        return Counter(zip(zones.level.tolist(), zones.size.tolist(), (zones.k if in_plane else zones.level).tolist()))

    assert table(graph) == table(per_level)
    assert Counter(zip(graph.level.tolist(), graph.size.tolist())) == slow_zones(q, in_plane)
