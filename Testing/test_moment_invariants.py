"""Moment invariants (PySERA category ``mi``): a slow PySERA-style reference and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from PySERASlicerLib.engine.features import mi
from scipy import ndimage


def slow_invariants(array, mask):
    """Voxel-by-voxel reference of PySERA's getMI: (x - min)/(mean - min) weights and a shape set,
    index coordinates, eta = mu / mu000^(1 + order/3), then J1, Q, J2, J3, B3."""
    coords = np.argwhere(mask).astype(float)
    x = array[mask].astype(float)
    out = {}
    for name, w in (("int", (x - x.min()) / (x.mean() - x.min())), ("shape", np.ones(len(x)))):
        m0 = w.sum()
        d = coords - (w[:, None] * coords).sum(0) / m0

        def eta(p, q, r, d=d, w=w, m0=m0):
            total = 0.0
            for n in range(len(w)):
                total += w[n] * d[n, 0] ** p * d[n, 1] ** q * d[n, 2] ** r
            return total / m0 ** (1 + (p + q + r) / 3)

        a, b, c = eta(2, 0, 0), eta(0, 2, 0), eta(0, 0, 2)
        xy, xz, yz = eta(1, 1, 0), eta(1, 0, 1), eta(0, 1, 1)
        out[f"mi_{name}_j1"] = a + b + c
        out[f"mi_{name}_q"] = a * a + b * b + c * c + 2 * (xy * xy + xz * xz + yz * yz)
        out[f"mi_{name}_j2"] = a * b + a * c + b * c - xy * xy - xz * xz - yz * yz
        out[f"mi_{name}_j3"] = a * b * c - c * xy * xy + 2 * xy * xz * yz - b * xz * xz - a * yz * yz
        third = {(p, q, r): eta(p, q, r) for p in range(4) for q in range(4) for r in range(4) if p + q + r == 3}
        out[f"mi_{name}_b3"] = sum(
            (6 if key == (1, 1, 1) else 3 if 2 in key else 1) * value ** 2 for key, value in third.items()
        )
    return out


def blob(shape=(12, 14, 16), seed=3):
    rng = np.random.default_rng(seed)
    array = ndimage.gaussian_filter(rng.normal(size=shape), 1.5) * 100 + 50
    k, j, i = np.indices(shape)
    mask = ((k - 5.5) / 5) ** 2 + ((j - 6) / 4) ** 2 + ((i - 8.5) / 7) ** 2 + 0.3 * np.sin(i + k) <= 1
    return array, mask


def test_matches_slow_reference():
    array, mask = blob((7, 8, 9))
    expected = slow_invariants(array, mask)
    values = mi.moment_invariants(array, mask)
    assert list(values) == [tag for tag, _, _ in mi.ROWS]
    for tag, value in expected.items():
        assert values[tag] == pytest.approx(value, rel=1e-9, abs=1e-15), tag


@pytest.mark.parametrize("transform", [
    lambda a: np.flip(a, 0),
    lambda a: np.flip(a, (1, 2)),
    lambda a: np.rot90(a, 1, (1, 2)),
    lambda a: np.rot90(a, 1, (0, 2)),
    lambda a: np.transpose(a, (2, 0, 1)),
    lambda a: np.pad(a, ((3, 0), (0, 5), (2, 2))),  # translation within a larger grid
], ids=["flip_k", "flip_ji", "rot90_ji", "rot90_ki", "permute", "translate"])
def test_invariant_under_grid_rotations_flips_translation(transform):
    array, mask = blob()
    base = mi.moment_invariants(array, mask)
    moved = mi.moment_invariants(transform(array), transform(mask))
    for tag in base:
        assert moved[tag] == pytest.approx(base[tag], rel=1e-9, abs=1e-15), tag


def test_intensity_set_invariant_under_affine_intensity_change():
    array, mask = blob()
    base = mi.moment_invariants(array, mask)
    changed = mi.moment_invariants(3.5 * array - 200, mask)
    for tag in base:
        assert changed[tag] == pytest.approx(base[tag], rel=1e-9), tag


def test_shape_set_approximately_scale_invariant():
    """Normalised moments remove scale exactly for the continuous shape; on voxels an object
    sampled at twice the resolution differs only by a discretisation term (well under 2 %)."""

    def ellipsoid(scale):
        k, j, i = np.indices((10 * scale, 16 * scale, 24 * scale)) + 0.5
        return ((k / scale - 5) / 4) ** 2 + ((j / scale - 8) / 6) ** 2 + ((i / scale - 12) / 10) ** 2 <= 1

    coarse, fine = ellipsoid(2), ellipsoid(4)
    a = mi.moment_invariants(coarse.astype(float), coarse)
    b = mi.moment_invariants(fine.astype(float), fine)
    for name in mi.INVARIANTS:
        tag = f"mi_shape_{name}"
        if name == "b3":  # ~0 for a centrally symmetric shape
            assert abs(a[tag]) < 1e-12 and abs(b[tag]) < 1e-12
        else:
            assert b[tag] == pytest.approx(a[tag], rel=0.02), tag


def test_constant_intensity_gives_nan_intensity_set():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    values = mi.moment_invariants(np.full(mask.shape, 7.0), mask)
    assert all(np.isnan(values[f"mi_int_{n}"]) for n in mi.INVARIANTS)
    assert all(np.isfinite(values[f"mi_shape_{n}"]) for n in mi.INVARIANTS)
