"""The morphology mesh equals scikit-image's marching cubes (Lewiner) on small and thin ROIs.

scikit-image is a test-only dependency: the engine sums per-pattern tables generated from it
(scripts/generate_marching_cubes_cases.py); here its meshes are built directly and compared.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySERASlicerLib.engine.features import morph
from PySERASlicerLib.engine.features.marching_cubes_cases import CASES

measure = pytest.importorskip("skimage.measure")


def skimage_area_volume(mask: np.ndarray, spacing_ijk) -> tuple:
    """Area and enclosed volume (divergence theorem) of scikit-image's mesh of ``mask``."""
    padded = np.pad(mask, 1).astype(np.float64)
    vertices, faces, _, _ = measure.marching_cubes(padded, 0.5, spacing=tuple(spacing_ijk[::-1]), method="lewiner")
    xyz = vertices[:, ::-1].astype(np.float64)  # (k, j, i) -> (i, j, k)
    a, b, c = xyz[faces[:, 0]], xyz[faces[:, 1]], xyz[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
    volume = np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0
    return area, abs(volume)


def _random_small_roi(seed: int) -> np.ndarray:
    """A few tens of voxels, grown at random: many ambiguous corner patterns."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((6, 7, 7), dtype=bool)
    mask[3, 3, 3] = True
    for _ in range(int(rng.integers(10, 60))):
        k, j, i = (np.array(np.nonzero(mask)).T)[rng.integers(np.count_nonzero(mask))]
        step = rng.integers(-1, 2, 3)
        mask[np.clip(k + step[0], 0, 5), np.clip(j + step[1], 0, 6), np.clip(i + step[2], 0, 6)] = True
    return mask


@pytest.mark.parametrize("seed", range(12))
def test_small_random_rois_match_scikit_image(seed):
    mask = _random_small_roi(seed)
    spacing = (0.9, 1.1, 2.3)
    area, volume = morph.mesh_area_volume(mask, spacing)
    expected_area, expected_volume = skimage_area_volume(mask, spacing)
    assert area == pytest.approx(expected_area, rel=1e-6)
    assert volume == pytest.approx(expected_volume, rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_checkerboard_like_noise_matches_scikit_image(seed):
    """Random voxels at density 0.5: nearly every cube is an ambiguous pattern."""
    mask = np.random.default_rng(100 + seed).random((5, 6, 7)) < 0.5
    area, volume = morph.mesh_area_volume(mask, (1.0, 1.0, 1.0))
    expected_area, expected_volume = skimage_area_volume(mask, (1.0, 1.0, 1.0))
    assert area == pytest.approx(expected_area, rel=1e-6)
    assert volume == pytest.approx(expected_volume, rel=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 9), (1, 7, 7), (3, 1, 8), (2, 2, 2)])
def test_thin_rois_match_scikit_image(shape):
    """Lines, sheets and diagonal chains one voxel thick."""
    mask = np.ones(shape, dtype=bool)
    chain = np.zeros((5, 5, 5), dtype=bool)
    chain[np.arange(5), np.arange(5), np.arange(5)] = True  # touching by corners only
    for m in (mask, chain):
        area, volume = morph.mesh_area_volume(m, (0.7, 0.8, 3.0))
        expected_area, expected_volume = skimage_area_volume(m, (0.7, 0.8, 3.0))
        assert area == pytest.approx(expected_area, rel=1e-6)
        assert volume == pytest.approx(expected_volume, rel=1e-6)


def test_the_generated_table_is_scikit_image_of_today():
    """Regenerating the table from the installed scikit-image gives the committed one."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "generate_marching_cubes_cases.py"
    spec = importlib.util.spec_from_file_location("generate_marching_cubes_cases", script)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert tuple([""] + [generator.case_triangles(case) for case in range(1, 255)] + [""]) == CASES
