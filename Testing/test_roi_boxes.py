"""ROI discovery works on the mask's bounding box, and the engine on each ROI's box, with the
same results as on the whole grid (issue 14: whole-image work touches the box, not the grid);
masks stay small integers; large ROIs' Moran/Geary transforms run in slabs."""

from __future__ import annotations

import numpy as np
import pytest
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.image import Image
from PySERASlicerLib.io.conversion import labels_from_array
from PySERASlicerLib.io.types import MaskData
from PySERASlicerLib.rois import discover_rois, nonzero_box
from PySERASlicerLib.settings import RoiSettings, Settings
from scipy import ndimage


def _label_map():
    """Two labels in a larger grid: label 3 has two 26-connected parts (one touching the grid's
    edge), label 1 one part that touches label 3's box."""
    labels = np.zeros((30, 40, 50), dtype=np.uint8)
    labels[5:9, 10:15, 20:27] = 3
    labels[0:2, 30:33, 45:50] = 3  # at the grid's corner
    labels[12:16, 12:14, 22:30] = 1
    labels[16, 14, 30] = 1  # diagonal neighbour: same 26-connected component
    return labels


def _expected(labels):
    """(name, full-grid mask) of every ROI, computed on the whole grid."""
    out = []
    for value in (1, 3):
        components, count = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(components.ravel())[1:]
        for rank, index in enumerate(np.argsort(-sizes, kind="stable"), start=1):
            out.append((f"label_{value}_lesion_{rank}", components == index + 1))
    return out


def test_nonzero_box_is_the_tight_box():
    labels = _label_map()
    box = nonzero_box(labels)
    assert box == (slice(0, 17), slice(10, 33), slice(20, 50))
    assert nonzero_box(np.zeros((4, 5, 6), dtype=np.uint8)) is None


def test_discovery_on_the_box_equals_the_whole_grid():
    labels = _label_map()
    found = discover_rois(MaskData(labels=labels), RoiSettings(min_roi_volume=1))
    expected = _expected(labels)
    assert [r.name for r in found.rois] == [name for name, _ in expected]
    for roi, (_, mask) in zip(found.rois, expected):
        np.testing.assert_array_equal(roi.mask, mask)
        assert roi.voxel_count == int(mask.sum())
        assert roi.box_mask.shape == tuple(s.stop - s.start for s in roi.box)
        # the box is tight: every face of it holds a voxel of the ROI
        for axis in range(3):
            assert roi.box_mask.take(0, axis=axis).any() and roi.box_mask.take(-1, axis=axis).any()


def test_combined_labels_and_named_structures_get_tight_boxes():
    labels = _label_map()
    combined = discover_rois(MaskData(labels=labels), RoiSettings(min_roi_volume=1, combine_rois=True))
    assert [r.name for r in combined.rois] == ["label_1", "label_3"]
    np.testing.assert_array_equal(combined.rois[1].mask, labels == 3)
    named = {"tumour": labels == 1, "empty": np.zeros(labels.shape, dtype=bool)}
    found = discover_rois(MaskData(named=named), RoiSettings(min_roi_volume=1))
    assert [r.name for r in found.rois] == ["tumour"] and found.dropped == [("empty", 0)]
    assert found.rois[0].box == nonzero_box(labels == 1)
    np.testing.assert_array_equal(found.rois[0].mask, labels == 1)


def test_extraction_from_the_box_equals_the_whole_mask():
    rng = np.random.default_rng(3)
    labels = _label_map()
    image = Image(np.rint(rng.normal(40, 60, labels.shape)).astype(np.int16), spacing=(0.9, 0.8, 2.0),
                  origin=(1.0, -2.0, 3.0), direction=np.eye(3), modality="CT")
    roi = discover_rois(MaskData(labels=labels), RoiSettings(min_roi_volume=1)).rois[0]
    for resampled in (False, True):
        settings = Settings.from_dict({"categories": "all", "dimensions": "1st,3d",
                                       "resampling": {"enabled": resampled, "voxel_size_mm": 1.1}})
        whole = extract_roi(image, roi.mask, settings, threads=1).values
        boxed = extract_roi(image, roi.box_mask, settings, threads=1, box=roi.box).values
        assert list(whole) == list(boxed)
        np.testing.assert_array_equal(np.array(list(whole.values())), np.array(list(boxed.values())))


def test_filtered_features_from_the_box_equal_the_whole_mask():
    """IBSI-2 filter features take the ROI's box too (local filters and whole-image ones)."""
    rng = np.random.default_rng(5)
    labels = _label_map()
    image = Image(np.rint(rng.normal(40, 60, labels.shape)).astype(np.int16), spacing=(0.9, 0.8, 2.0))
    roi = discover_rois(MaskData(labels=labels), RoiSettings(min_roi_volume=1)).rois[0]
    settings = Settings(categories=("stat",), dimensions=("1st",),
                        filters=({"filter": "mean", "support": 3}, {"filter": "log", "sigma_mm": 1.5}))
    whole = extract_roi(image, roi.mask, settings, threads=1).values
    boxed = extract_roi(image, roi.box_mask, settings, threads=1, box=roi.box).values
    assert list(whole) == list(boxed) and len(whole) == 3 * 18  # the image and its two filters
    assert "stat_mean_log_s1.5" in whole
    np.testing.assert_array_equal(np.array(list(whole.values())), np.array(list(boxed.values())))


def test_a_box_mask_must_fit_its_box():
    image = Image(np.zeros((5, 6, 7), dtype=np.int16), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="does not fit the box"):
        extract_roi(image, np.ones((2, 2, 2), dtype=bool), Settings(), box=(slice(0, 2), slice(0, 3), slice(0, 2)))
    with pytest.raises(ValueError, match="does not fit the box"):
        extract_roi(image, np.ones((2, 2, 2), dtype=bool), Settings(), box=(slice(4, 6), slice(0, 2), slice(0, 2)))


@pytest.mark.parametrize("array, dtype", [
    (np.array([[[0.0, 1.0], [2.0, 0.0]]], dtype=np.float32), np.uint8),
    (np.array([[[0.0, -1.0], [300.0, 0.0]]], dtype=np.float64), np.int16),
    (np.array([[[True, False]]]), np.uint8),
    (np.array([[[0, 7]]], dtype=np.int16), np.int16),
])
def test_mask_labels_stay_small(array, dtype):
    labels = labels_from_array(array, "mask.nii", apply_preprocessing=False)
    assert labels.dtype == dtype
    np.testing.assert_array_equal(labels, array.astype(np.int64))


def test_moran_geary_in_slabs_equals_one_transform(monkeypatch):
    """A large ROI's Moran/Geary transforms run in slabs of frequencies (bounded memory); the
    slabs change nothing but the summation order."""
    from PySERASlicerLib.engine.features import morph

    rng = np.random.default_rng(1)
    k, j, i = np.ogrid[:14, :20, :18]
    mask = ((k - 7) / 6.0) ** 2 + ((j - 10) / 9.0) ** 2 + ((i - 9) / 8.0) ** 2 <= 1
    image = rng.normal(0, 10, mask.shape)
    whole = morph.moran_geary(image, mask, (0.8, 0.8, 2.0))
    monkeypatch.setattr(morph, "_SLAB_ELEMENTS", 100)  # 1 frequency per slab
    monkeypatch.setattr(morph, "_CACHED_SPECTRUM_SIZE", 0)  # and the uncached kernel
    np.testing.assert_allclose(morph.moran_geary(image, mask, (0.8, 0.8, 2.0)), whole, rtol=1e-12)


def test_read_image_uses_the_itk_buffer_without_a_copy(tmp_path):
    """The voxel array of a read image is SimpleITK's own buffer (no second copy of a CT), kept
    alive by the array and writable."""
    import gc

    import SimpleITK as sitk
    from PySERASlicerLib.io.readers import read_image

    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    sitk.WriteImage(sitk.GetImageFromArray(data), str(tmp_path / "ct.nii.gz"))
    image = read_image(str(tmp_path / "ct.nii.gz"))
    gc.collect()
    _ = [sitk.GetImageFromArray(np.full((40, 40, 40), 7, np.int16)) for _ in range(4)]  # reuse freed memory
    assert not image.array.flags.owndata and image.array.flags.writeable
    np.testing.assert_array_equal(image.array, data)


def test_bounding_box_grows_by_the_margin_and_clips():
    from PySERASlicerLib.engine.bounding_box import bounding_box

    mask = np.zeros((5, 6, 7), dtype=bool)
    mask[1, 2:4, 6] = True
    assert bounding_box(mask) == (slice(1, 2), slice(2, 4), slice(6, 7))
    assert bounding_box(mask, margin=(2, 1, 3)) == (slice(0, 4), slice(1, 5), slice(3, 7))
    assert bounding_box(mask[:, ::2]) == (slice(1, 2), slice(1, 2), slice(6, 7))  # not contiguous
    with pytest.raises(ValueError, match="empty ROI mask"):
        bounding_box(np.zeros((2, 2, 2), dtype=bool))
