"""Morphology: mesh against analytic shapes, features without IBSI references (OMBB, MVEE) against
independent answers, Moran's I / Geary's C against a brute-force O(n^2) reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySERASlicerLib.engine.features import morph
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.engine.registry import select
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import Settings
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

SPECS = select("morph", "1st")


def _features(mask, spacing=(1.0, 1.0, 1.0), array=None):
    array = np.where(mask, 100.0, 0.0) if array is None else array
    image = Image(np.pad(array, 2), spacing=spacing)
    return extract_roi(image, np.pad(mask, 2), Settings(), specs=SPECS).values


def test_single_voxel_mesh_is_an_octahedron():
    area, volume = morph.mesh_area_volume(np.ones((1, 1, 1), dtype=bool), (1.0, 1.0, 1.0))
    assert volume == pytest.approx(1 / 6)
    assert area == pytest.approx(8 * math.sqrt(3) / 4 * 0.5)


def test_sphere_mesh_volume_and_area_close_to_analytic():
    r = 15.0
    k, j, i = np.ogrid[-17:18, -17:18, -17:18]
    mask = i**2 + j**2 + k**2 <= r**2
    area, volume = morph.mesh_area_volume(mask, (1.0, 1.0, 1.0))
    assert volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    # a binary mask's mesh is terraced: marching cubes over-estimates a sphere's area by ~9%
    assert 1.0 < area / (4 * math.pi * r**2) < 1.12


def test_mesh_is_invariant_under_flips_and_spacing_scales_it():
    rng = np.random.default_rng(0)
    from scipy import ndimage
    mask = ndimage.gaussian_filter(rng.random((12, 14, 13)), 1.5) > 0.5
    area, volume = morph.mesh_area_volume(mask, (1.0, 1.0, 1.0))
    area2, volume2 = morph.mesh_area_volume(mask, (2.0, 2.0, 2.0))
    assert volume2 == pytest.approx(8 * volume) and area2 == pytest.approx(4 * area)
    # two separated copies: additive
    double = np.concatenate([mask, np.zeros_like(mask), mask], axis=0)
    assert morph.mesh_area_volume(double, (1.0, 1.0, 1.0)) == pytest.approx((2 * area, 2 * volume))


def test_mesh_sums_equal_the_explicit_triangle_mesh_at_anisotropic_spacing():
    """The per-pattern sums (all 256 patterns at once) against the mesh written out triangle by
    triangle in world coordinates: area and divergence-theorem volume."""
    from PySERASlicerLib.engine.features.marching_cubes_cases import CASES, EDGES

    rng = np.random.default_rng(7)
    mask = rng.random((5, 6, 7)) > 0.45
    spacing = (0.7, 1.3, 2.9)  # (i, j, k)
    points = np.array([morph._CORNERS[list(edge)].mean(axis=0) for edge in EDGES] + [[0.5, 0.5, 0.5]])
    padded = np.pad(mask, 1)
    area = volume = 0.0
    for k in range(padded.shape[0] - 1):
        for j in range(padded.shape[1] - 1):
            for i in range(padded.shape[2] - 1):
                pattern = sum(int(padded[k + ((c >> 2) & 1), j + ((c >> 1) & 1), i + (c & 1)]) << c for c in range(8))
                for code in np.array([int(d, 16) for d in CASES[pattern]]).reshape(-1, 3):
                    a, b, c = ((points[n] + (i, j, k)) * spacing for n in code)
                    area += 0.5 * np.linalg.norm(np.cross(b - a, c - a))
                    volume += float(np.dot(a, np.cross(b, c))) / 6.0
    assert morph.mesh_area_volume(mask, spacing) == pytest.approx((area, volume), rel=1e-12)


def test_box_roi_bounding_boxes():
    mask = np.zeros((6, 9, 12), dtype=bool)
    mask[1:5, 2:7, 3:10] = True  # 4 x 5 x 7 voxels
    values = _features(mask, spacing=(0.7, 1.1, 2.0))
    # an axis-aligned box: the oriented minimum bounding box is the axis-aligned one
    assert values["morph_vol_dens_ombb"] == pytest.approx(values["morph_vol_dens_aabb"])
    assert values["morph_area_dens_ombb"] == pytest.approx(values["morph_area_dens_aabb"])
    assert values["morph_vol_approx"] == pytest.approx(4 * 5 * 7 * 0.7 * 1.1 * 2.0)


def _brute_force_box_volume(points, n=4000, seed=0):
    rotations = Rotation.random(n, random_state=seed).as_matrix()
    rotated = np.einsum("rij,pj->rpi", rotations, points)
    return float(np.prod(np.ptp(rotated, axis=1), axis=1).min())


def test_ombb_of_a_rotated_box_recovers_the_box():
    # a 30 x 14 x 8 box rotated about two axes: its hull facets include the box faces
    corners = np.array([[x, y, z] for x in (0, 30) for y in (0, 14) for z in (0, 8)], dtype=float)
    rng = np.random.default_rng(1)
    inside = rng.random((400, 3)) * [30, 14, 8]
    rot = Rotation.from_euler("zx", [27, 41], degrees=True).as_matrix()
    points = np.vstack([corners, inside]) @ rot.T
    volume, dims = morph.oriented_minimum_bounding_box(ConvexHull(points))
    assert volume == pytest.approx(30 * 14 * 8, rel=1e-9)
    assert sorted(dims) == pytest.approx([8, 14, 30])


def test_ombb_is_not_worse_than_any_sampled_orientation():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(300, 3)) * [5, 3, 1.5]
    points = points @ Rotation.random(random_state=3).as_matrix().T
    volume, _ = morph.oriented_minimum_bounding_box(ConvexHull(points))
    assert volume <= _brute_force_box_volume(points) * (1 + 1e-9)


def _ombb_over_all_facets(hull):
    """Slow reference: every facet normal, 2D hull of the projected vertices, every 2D hull edge."""
    points = hull.points[hull.vertices]
    best = np.inf
    for normal in hull.equations[:, :3]:
        normal = normal / np.linalg.norm(normal)
        helper = np.eye(3)[np.argmin(np.abs(normal))]
        u = np.cross(normal, helper)
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        flat = np.stack([points @ u, points @ v], axis=1)
        outline = flat[ConvexHull(flat).vertices]
        height = np.ptp(points @ normal)
        for a, b in zip(outline, np.roll(outline, -1, axis=0)):
            e = (b - a) / np.linalg.norm(b - a)
            w1 = np.ptp(outline @ e)
            w2 = np.ptp(outline @ np.array([-e[1], e[0]]))
            best = min(best, height * w1 * w2)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ombb_equals_exhaustive_search_over_facet_orientations(seed):
    # the pruned, chunked search must find the same box as visiting every facet normal
    rng = np.random.default_rng(seed)
    if seed == 2:  # a voxel mesh: many coplanar, axis-aligned facets
        from scipy import ndimage
        mask = ndimage.gaussian_filter(rng.random((9, 16, 14)), 2.0) > 0.5
        points = morph.mesh_vertices(mask, (0.8, 0.8, 2.5))
    else:
        points = rng.normal(size=(250, 3)) * [6, 3, 1.5] @ Rotation.random(random_state=seed).as_matrix().T
    hull = ConvexHull(points)
    volume, dims = morph.oriented_minimum_bounding_box(hull)
    assert volume == pytest.approx(_ombb_over_all_facets(hull), rel=1e-9)
    assert np.prod(dims) == pytest.approx(volume, rel=1e-12)


def _mvee_volume_reference(points):
    """Independent reference: the dual D-optimal design problem solved by scipy's SLSQP
    (maximise log det of the lifted moment matrix over the simplex), then the enclosing ellipsoid."""
    from scipy.optimize import minimize

    n, d = points.shape
    q = np.vstack([points.T, np.ones(n)])

    def objective(u):
        x = (q * u) @ q.T
        m = np.einsum("ij,ij->j", q, np.linalg.solve(x, q))
        return -np.linalg.slogdet(x)[1], -m

    u = minimize(objective, np.full(n, 1.0 / n), jac=True, method="SLSQP", bounds=[(0, 1)] * n,
                 constraints=[{"type": "eq", "fun": lambda u: u.sum() - 1}], options={"ftol": 1e-14, "maxiter": 2000}).x
    u = np.clip(u, 0, None) / np.clip(u, 0, None).sum()
    centre = points.T @ u
    shape = np.linalg.inv((points.T * u) @ points - np.outer(centre, centre)) / d
    reach = np.einsum("ij,jk,ik->i", points - centre, shape, points - centre).max()
    return 4 / 3 * math.pi * np.prod(np.sqrt(reach / np.linalg.eigvalsh(shape)))


@pytest.mark.parametrize("seed", [7, 8])
def test_mvee_volume_is_within_tolerance_of_the_optimum(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(60, 3)) * rng.uniform(0.5, 4, 3) @ Rotation.random(random_state=seed).as_matrix().T
    points = points[ConvexHull(points).vertices]
    centre, axes = morph.minimum_volume_enclosing_ellipsoid(points, tolerance=1e-4)
    # the same optimum as an independent solver, within the 1e-4 certificate
    ellipsoid_volume = 4 / 3 * math.pi * np.prod(axes)
    reference = _mvee_volume_reference(points)
    assert reference * (1 - 1e-4) <= ellipsoid_volume <= reference * (1 + 3e-4)
    _, tight = morph.minimum_volume_enclosing_ellipsoid(points, tolerance=1e-7)
    assert 4 / 3 * math.pi * np.prod(tight) == pytest.approx(reference, rel=1e-6)


def test_mvee_of_points_on_an_ellipsoid():
    rng = np.random.default_rng(4)
    direction = rng.normal(size=(2000, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    rot = Rotation.random(random_state=5).as_matrix()
    points = (direction * [9.0, 4.0, 2.5]) @ rot.T + [3, -2, 7]
    centre, axes = morph.minimum_volume_enclosing_ellipsoid(points)
    np.testing.assert_allclose(axes, [9.0, 4.0, 2.5], rtol=1e-3)
    np.testing.assert_allclose(centre, [3, -2, 7], atol=1e-2)


def test_ellipsoid_area_exact_against_numerical_integration():
    a, b, c = 5.0, 3.0, 2.0
    n = 800
    theta = (np.arange(n) + 0.5) * np.pi / n
    phi = (np.arange(2 * n) + 0.5) * np.pi / n
    t, p = np.meshgrid(theta, phi, indexing="ij")
    d_theta = np.stack([a * np.cos(t) * np.cos(p), b * np.cos(t) * np.sin(p), -c * np.sin(t)])
    d_phi = np.stack([-a * np.sin(t) * np.sin(p), b * np.sin(t) * np.cos(p), 0 * t])
    numeric = np.linalg.norm(np.cross(d_theta, d_phi, axis=0), axis=0).sum() * (np.pi / n) ** 2
    assert morph.ellipsoid_area(a, b, c) == pytest.approx(numeric, rel=1e-5)
    assert morph.ellipsoid_area(2, 2, 2) == pytest.approx(16 * math.pi)


def _moran_geary_brute_force(image, mask, spacing):
    pos = np.argwhere(mask)[:, ::-1] * np.asarray(spacing)
    x = image[mask]
    y = x - x.mean()
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    w = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    n = len(x)
    moran = n / w.sum() * (w * np.outer(y, y)).sum() / (y**2).sum()
    geary = (n - 1) / (2 * w.sum()) * (w * (x[:, None] - x[None]) ** 2).sum() / (y**2).sum()
    return moran, geary


def test_moran_geary_equal_brute_force_over_all_pairs():
    rng = np.random.default_rng(6)
    image = rng.normal(size=(5, 7, 6)).cumsum(axis=2)
    mask = rng.random(image.shape) > 0.35
    spacing = (0.8, 1.3, 2.5)
    np.testing.assert_allclose(morph.moran_geary(image, mask, spacing),
                               _moran_geary_brute_force(image, mask, spacing), rtol=1e-9)


def test_centre_of_mass_shift_and_integrated_intensity():
    mask = np.zeros((5, 5, 8), dtype=bool)
    mask[1:4, 1:4, 1:7] = True
    array = np.where(mask, 1.0, 0.0)
    array[:, :, 4:7] *= 3.0  # heavier right half along i
    values = _features(mask, array=array)
    # geometric centre i = 3.5; weighted centre i = (3 * (1+2+3) * 9 + 9 * (4+5+6) * 9) / (27 + 81)
    weighted = (9 * (1 + 2 + 3) + 27 * (4 + 5 + 6)) / (27 + 81)
    assert values["morph_com"] == pytest.approx(abs(weighted - 3.5))
    assert values["morph_integ_int"] == pytest.approx(values["morph_volume"] * 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxel_moments_and_hull_candidates_equal_direct_computations(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((6, 9, 11)) > 0.6
    spacing = np.array([0.7, 1.1, 2.5])
    n, centre, covariance = morph.voxel_moments(mask, spacing)
    positions = np.stack(np.nonzero(mask)[::-1], axis=1) * spacing
    assert n == len(positions)
    np.testing.assert_allclose(centre, positions.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(covariance, np.cov(positions.T), rtol=1e-12, atol=1e-14)
    weights = np.where(mask, rng.normal(size=mask.shape), 0.0)
    np.testing.assert_allclose(morph.weighted_centre(weights, spacing),
                               (positions * weights[mask][:, None]).sum(axis=0), rtol=1e-12, atol=1e-12)
    # hull candidates: each grid line's first and last vertex of each kind, same hull as all vertices
    every = morph.mesh_vertices(mask, spacing)
    candidates = morph.mesh_vertices(mask, spacing, hull_candidates=True)
    assert len(candidates) < len(every)
    assert {tuple(p) for p in candidates} <= {tuple(p) for p in every}
    assert ConvexHull(candidates).volume == pytest.approx(ConvexHull(every).volume, rel=1e-12)
