"""RTSTRUCT rasterisation (even-odd rule) and DICOM SEG placement, on real and pydicom-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_fixtures import (
    index_to_world,
    slow_point_in_polygon,
    square,
    world_geometry,
    write_rtstruct,
    write_seg,
    write_series,
)
from PySERASlicerLib.io.readers import InputError, read_image, read_mask
from PySERASlicerLib.io.rtstruct import contour_toggles, rasterise

DATA = Path(__file__).parent / "Data" / "ibsi" / "ibsi_1_ct_radiomics_phantom"
SPACING, ORIGIN = (0.8, 0.8, 2.5), (-10.0, -20.0, 30.0)


def test_ibsi_rtstruct_matches_nifti_mask():
    """GTV-1 of the IBSI CT phantom, rasterised from its RTSTRUCT, equals the IBSI NIfTI mask:
    125256 voxels, Dice 1.0, 0 differing voxels."""
    image = read_image(DATA / "dicom" / "image")
    warnings = []
    mask = read_mask(DATA / "dicom" / "mask" / "DCM_RS_00060.dcm", image, warnings=warnings)
    assert list(mask.named) == ["GTV-1"] and warnings == []
    gtv = np.asarray(mask.named["GTV-1"])
    reference = read_image(DATA / "nifti" / "mask" / "mask.nii.gz").array > 0
    dice = 2 * np.count_nonzero(gtv & reference) / (np.count_nonzero(gtv) + np.count_nonzero(reference))
    assert np.count_nonzero(reference) == 125256
    assert dice == 1.0, f"Dice {dice}, {np.count_nonzero(gtv ^ reference)} voxels differ"


def _slow_fill(polygons, shape):
    """Reference: voxel centre (i, j) inside by the even-odd rule over all polygons (Python loops)."""
    out = np.zeros(shape, dtype=bool)
    for j in range(shape[0]):
        for i in range(shape[1]):
            out[j, i] = sum(slow_point_in_polygon(i, j, p) for p in polygons) % 2 == 1
    return out


@pytest.mark.parametrize("seed", range(6))
def test_scanline_fill_equals_slow_ray_casting(seed):
    rng = np.random.default_rng(seed)
    polygons = []
    for _ in range(rng.integers(1, 4)):  # random star-shaped polygons, possibly overlapping
        n = rng.integers(3, 12)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(2, 9, n)
        centre = rng.uniform(4, 16, 2)
        polygons.append(np.column_stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)]))
    shape = (21, 23)
    toggles = sum(contour_toggles(p[:, 0], p[:, 1], *shape) for p in polygons)
    fast = (np.cumsum(toggles, axis=1)[:, : shape[1]] % 2) == 1
    np.testing.assert_array_equal(fast, _slow_fill(polygons, shape))


def _grid():
    image = np.zeros((8, 24, 20), dtype=np.int16)
    _, affine = world_geometry(SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))
    return image, affine


def test_rtstruct_with_hole_even_odd(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored + 1100, SPACING, ORIGIN)
    # outer square i in [2, 16], j in [3, 20] and a hole i in [6, 10], j in [8, 12] on slices 2..5;
    # vertices sit half a voxel outside those voxel centres
    contours_ring, contours_box = [], []
    for k in range(2, 6):
        z = index_to_world(affine, (0, 0, k))[2]
        lo, hi = index_to_world(affine, (1.5, 2.5, k)), index_to_world(affine, (16.5, 20.5, k))
        contours_ring.append(square(lo[0], hi[0], lo[1], hi[1], z))
        lo, hi = index_to_world(affine, (5.5, 7.5, k)), index_to_world(affine, (10.5, 12.5, k))
        contours_ring.append(square(lo[0], hi[0], lo[1], hi[1], z)[::-1])  # holes are often wound the other way
    z = index_to_world(affine, (0, 0, 7))[2]
    lo, hi = index_to_world(affine, (0.5, 0.5, 7)), index_to_world(affine, (3.5, 4.5, 7))
    contours_box.append(square(lo[0], hi[0], lo[1], hi[1], z))
    write_rtstruct(tmp_path / "rs.dcm", {"Ring": contours_ring, "Box": contours_box}, uids, open_contours=1)

    image = read_image(tmp_path / "ct")
    warnings = []
    mask = read_mask(tmp_path / "rs.dcm", image, warnings=warnings)
    expected = np.zeros(stored.shape, dtype=bool)
    expected[2:6, 3:21, 2:17] = True
    expected[2:6, 8:13, 6:11] = False
    np.testing.assert_array_equal(mask.named["Ring"], expected)
    box = np.zeros(stored.shape, dtype=bool)
    box[7, 1:5, 1:4] = True
    np.testing.assert_array_equal(mask.named["Box"], box)
    assert np.count_nonzero(mask.named["Ring"]) == 4 * (18 * 15 - 5 * 5)
    assert any("open contours or points ignored" in w for w in warnings)
    # the mask folder (holding the RTSTRUCT) works as well as the file
    folder = tmp_path / "rsdir"
    folder.mkdir()
    (tmp_path / "rs.dcm").rename(folder / "rs.dcm")
    np.testing.assert_array_equal(read_mask(folder, image).named["Ring"], expected)


def test_rtstruct_contours_off_the_slices_are_reported(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored, SPACING, ORIGIN)
    z_between = index_to_world(affine, (0, 0, 3.5))[2]
    z_outside = index_to_world(affine, (0, 0, 40))[2]
    z_on = index_to_world(affine, (0, 0, 4))[2]
    contours = [square(-5, 0, -15, -10, z) for z in (z_between, z_outside, z_on)]
    write_rtstruct(tmp_path / "rs.dcm", {"GTV": contours}, uids)
    warnings = []
    mask = read_mask(tmp_path / "rs.dcm", read_image(tmp_path / "ct"), warnings=warnings)
    assert np.flatnonzero(np.asarray(mask.named["GTV"]).any(axis=(1, 2))).tolist() == [4]
    assert any("2 of 3 contours do not lie on a slice" in w for w in warnings)


def test_rtstruct_cached_in_temporary_folder(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored, SPACING, ORIGIN)
    z = index_to_world(affine, (0, 0, 3))[2]
    write_rtstruct(tmp_path / "rs.dcm", {"A": [square(-5, 0, -15, -10, z)], "B": [square(-8, -6, -18, -12, z)]}, uids)
    cache = tmp_path / "cache"
    mask = read_mask(tmp_path / "rs.dcm", read_image(tmp_path / "ct"), temp_dir=str(cache))
    assert sorted(p.name for p in cache.iterdir()) == ["000_A.npy", "001_B.npy"]
    assert all(isinstance(m, np.memmap) for m in mask.named.values())
    assert np.count_nonzero(mask.named["A"]) > 0


def test_rasterise_oblique_grid_matches_slow_reference():
    """Contours in world coordinates on a rotated grid: fill equals slow ray casting in index space."""
    from PySERASlicerLib.image import Image

    iop = (0.8, 0.6, 0.0, -0.6, 0.8, 0.0)
    direction, affine = world_geometry((1.0, 1.2, 2.0), (5.0, -3.0, 7.0), iop)
    image = Image(np.zeros((3, 18, 16)), (1.0, 1.2, 2.0), (5.0, -3.0, 7.0), direction)
    polygon_ij = np.array([[2.3, 1.7], [13.1, 3.2], [11.4, 15.6], [6.2, 9.9], [1.4, 14.3]])
    points = np.array([index_to_world(affine, (x, y, 1)) for x, y in polygon_ij])
    mask, skipped = rasterise([points], image)
    assert skipped == 0
    expected = np.zeros(image.array.shape, dtype=bool)
    expected[1] = _slow_fill([polygon_ij], (18, 16))
    np.testing.assert_array_equal(mask, expected)


def test_seg_two_segments_on_a_cropped_grid(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored, SPACING, ORIGIN)
    # SEG frames cover a 10 x 12 in-plane crop starting at voxel (i, j) = (4, 6)
    crop_origin = index_to_world(affine, (4, 6, 0))
    tumour = np.zeros((8, 12, 10), dtype=bool)
    tumour[2:5, 3:9, 2:7] = True
    node = np.zeros((8, 12, 10), dtype=bool)
    node[6, 0:2, 8:10] = True
    write_seg(tmp_path / "seg.dcm", {"Tumour": tumour, "Node": node}, uids, SPACING, crop_origin)
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", read_image(tmp_path / "ct"), warnings=warnings)
    assert list(mask.named) == ["Tumour", "Node"] and warnings == []
    expected = np.zeros(stored.shape, dtype=bool)
    expected[:, 6:18, 4:14] = tumour
    np.testing.assert_array_equal(mask.named["Tumour"], expected)
    expected = np.zeros(stored.shape, dtype=bool)
    expected[:, 6:18, 4:14] = node
    np.testing.assert_array_equal(mask.named["Node"], expected)


def test_seg_on_another_grid_is_resampled(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored, SPACING, ORIGIN)
    # segment on a 2x coarser in-plane grid with the same slices; origin at the centre of a
    # 2x2 block of image voxels (0.5 voxel shift)
    coarse_origin = index_to_world(affine, (0.5, 0.5, 0))
    coarse = np.zeros((8, 12, 10), dtype=bool)
    coarse[3, 2:5, 1:4] = True  # image voxels i 2..7, j 4..9
    write_seg(tmp_path / "seg.dcm", {"Lesion": coarse}, uids, (1.6, 1.6, 2.5), coarse_origin)
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", read_image(tmp_path / "ct"), warnings=warnings)
    assert any("resampled onto the image grid" in w for w in warnings)
    expected = np.zeros(stored.shape, dtype=bool)
    expected[3, 4:10, 2:8] = True
    np.testing.assert_array_equal(mask.named["Lesion"], expected)


def test_truncated_rtstruct_is_an_input_error(tmp_path):
    stored, affine = _grid()
    uids = write_series(tmp_path / "ct", stored, SPACING, ORIGIN)
    z = index_to_world(affine, (0, 0, 3))[2]
    write_rtstruct(tmp_path / "rs.dcm", {"A": [square(-5, 0, -15, -10, z)]}, uids)
    data = (tmp_path / "rs.dcm").read_bytes()
    (tmp_path / "rs.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="rs.dcm"):
        read_mask(tmp_path / "rs.dcm", read_image(tmp_path / "ct"))

